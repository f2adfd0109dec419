#!/usr/bin/env node
// Extends tfjs-node's N-API binding (the C++ sources in its binding/ folder) before scripts/setup-native.sh compiles it:
//
// - List attributes (tfjs_backend.cc). SetOpAttr rejects list(string) and list(type) op attributes: TF_ATTR_STRING
//   and TF_ATTR_TYPE accept a single value only. TensorFlow's fused ops need both (`fused_ops: ["BiasAdd", "Relu"]`,
//   `TArgs: [DT_FLOAT]`), and training/kernels/tensorflow.ts runs oneDNN's fused convolution through them. A
//   JavaScript array given for either attribute type becomes TFE_OpSetAttrStringList / TFE_OpSetAttrTypeList; a single
//   value goes through the binding's own code as before, so every op tfjs-node itself runs is set up exactly as it was.
// - Reading into an array (tfjs_backend.h/.cc, tfjs_binding.cc): `binding.tensorDataInto(id, float32Array)` copies a
//   float32 tensor into an array the caller owns, where tensorDataSync allocates a new one per read (for the wide-mlp,
//   97 MB of fresh pages a step). Adam's host update reads each gradient straight into its WebAssembly memory.
//
//   node scripts/tfjs-binding-patch.js path/to/tfjs-node/binding
//
// Idempotent (a marker comment per patch); fails loudly when the code it extends has changed, so a new tfjs-node
// version cannot silently build without it.
'use strict';
const fs = require('fs');
const path = require('path');

const PATCHES = [
  {
    file: 'tfjs_backend.cc',
    what: 'list(string) attributes',
    anchor: `    case TF_ATTR_STRING: {
`,
    insert: `      // durable-train: list attributes (list(string))
      if (IsArray(env, nstatus, &js_value)) {
        uint32_t length;
        nstatus = napi_get_array_length(env, js_value, &length);
        ENSURE_NAPI_OK(env, nstatus);
        std::vector<std::string> strs(length);
        std::vector<const void *> ptrs(length);
        std::vector<size_t> lens(length);
        for (uint32_t i = 0; i < length; ++i) {
          napi_value element;
          nstatus = napi_get_element(env, js_value, i, &element);
          ENSURE_NAPI_OK(env, nstatus);
          nstatus = GetStringParam(env, element, strs[i]);
          ENSURE_NAPI_OK(env, nstatus);
          ptrs[i] = strs[i].data();
          lens[i] = strs[i].size();
        }
        TFE_OpSetAttrStringList(tfe_op, attr_name, ptrs.data(), lens.data(),
                                static_cast<int>(length));
        break;
      }
`,
  },
  {
    file: 'tfjs_backend.cc',
    what: 'list(type) attributes',
    anchor: `    case TF_ATTR_TYPE: {
`,
    insert: `      // durable-train: list attributes (list(type))
      if (IsArray(env, nstatus, &js_value)) {
        uint32_t length;
        nstatus = napi_get_array_length(env, js_value, &length);
        ENSURE_NAPI_OK(env, nstatus);
        std::vector<TF_DataType> types(length);
        for (uint32_t i = 0; i < length; ++i) {
          napi_value element;
          nstatus = napi_get_element(env, js_value, i, &element);
          ENSURE_NAPI_OK(env, nstatus);
          int32_t value;
          nstatus = napi_get_value_int32(env, element, &value);
          ENSURE_NAPI_OK(env, nstatus);
          types[i] = static_cast<TF_DataType>(value);
        }
        TFE_OpSetAttrTypeList(tfe_op, attr_name, types.data(),
                              static_cast<int>(length));
        break;
      }
`,
  },
  {
    file: 'tfjs_backend.h',
    what: 'reading a tensor into an array',
    anchor: `  napi_value GetTensorData(napi_env env, napi_value tensor_id_value);
`,
    insert: `  // durable-train: read into
  napi_value TensorDataInto(napi_env env, napi_value tensor_id_value,
                            napi_value target);
`,
  },
  {
    file: 'tfjs_backend.cc',
    what: 'reading a tensor into an array',
    anchor: `napi_value TFJSBackend::ExecuteOp(napi_env env, napi_value op_name_value,
`,
    before: true,
    insert: `// durable-train: read into. Copies a float32 tensor's values into a Float32Array of the same length the caller
// owns (tensorDataSync allocates a new one for every read).
napi_value TFJSBackend::TensorDataInto(napi_env env,
                                       napi_value tensor_id_value,
                                       napi_value target) {
  int32_t tensor_id;
  ENSURE_NAPI_OK_RETVAL(
      env, napi_get_value_int32(env, tensor_id_value, &tensor_id), nullptr);
  auto tensor_entry = tfe_handle_map_.find(tensor_id);
  if (tensor_entry == tfe_handle_map_.end()) {
    NAPI_THROW_ERROR(env, "tensorDataInto: no tensor %d", tensor_id);
    return nullptr;
  }
  napi_typedarray_type array_type;
  size_t length;
  void *data;
  napi_value array_buffer;
  size_t byte_offset;
  ENSURE_NAPI_OK_RETVAL(
      env,
      napi_get_typedarray_info(env, target, &array_type, &length, &data,
                               &array_buffer, &byte_offset),
      nullptr);
  TF_AutoStatus tf_status;
  TF_AutoTensor tensor(
      TFE_TensorHandleResolve(tensor_entry->second, tf_status.status));
  ENSURE_TF_OK_RETVAL(env, tf_status, nullptr);
  size_t byte_length = TF_TensorByteSize(tensor.tensor);
  if (array_type != napi_float32_array ||
      TF_TensorType(tensor.tensor) != TF_FLOAT ||
      byte_length != length * sizeof(float)) {
    NAPI_THROW_ERROR(env,
                     "tensorDataInto: tensor %d (%zu bytes) does not fit a "
                     "Float32Array of %zu values",
                     tensor_id, byte_length, length);
    return nullptr;
  }
  memcpy(data, TF_TensorData(tensor.tensor), byte_length);
  napi_value undefined;
  ENSURE_NAPI_OK_RETVAL(env, napi_get_undefined(env, &undefined), nullptr);
  return undefined;
}

`,
  },
  {
    file: 'tfjs_binding.cc',
    what: 'reading a tensor into an array',
    anchor: `static napi_value ExecuteOp(napi_env env, napi_callback_info info) {
`,
    before: true,
    insert: `// durable-train: read into
static napi_value TensorDataInto(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  napi_value js_this;
  ENSURE_NAPI_OK_RETVAL(
      env, napi_get_cb_info(env, info, &argc, args, &js_this, nullptr),
      js_this);
  if (argc < 2) {
    NAPI_THROW_ERROR(env, "tensorDataInto(id, float32Array): got %zu args",
                     argc);
    return nullptr;
  }
  ENSURE_VALUE_IS_NUMBER_RETVAL(env, args[0], js_this);
  TFJSBackend *const backend = GetTFJSBackend(env);
  if (!backend) return nullptr;
  return backend->TensorDataInto(env, args[0], args[1]);
}

`,
  },
  {
    file: 'tfjs_binding.cc',
    what: 'reading a tensor into an array',
    anchor: `      {"tensorDataSync", nullptr, TensorDataSync, nullptr, nullptr, nullptr,
       napi_default, nullptr},
`,
    insert: `      // durable-train: read into
      {"tensorDataInto", nullptr, TensorDataInto, nullptr, nullptr, nullptr,
       napi_default, nullptr},
`,
  },
];

function main() {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: tfjs-binding-patch.js path/to/tfjs-node/binding');
  const sources = new Map();
  const read = (file) => {
    if (!sources.has(file)) sources.set(file, fs.readFileSync(path.join(dir, file), 'utf8'));
    return sources.get(file);
  };
  for (const p of PATCHES) {
    let src = read(p.file);
    if (src.includes(p.insert)) continue; // applied before
    const n = src.split(p.anchor).length - 1;
    if (n !== 1) throw new Error(`${p.file}: expected one "${p.anchor.trim()}" to add ${p.what}, found ${n}`);
    src = src.replace(p.anchor, p.before ? p.insert + p.anchor : p.anchor + p.insert);
    sources.set(p.file, src);
  }
  const backend = sources.get('tfjs_backend.cc');
  if (backend && !/#include <vector>/.test(backend))
    sources.set('tfjs_backend.cc', backend.replace('#include <string>\n', '#include <string>\n#include <vector>\n'));
  for (const [file, src] of sources) fs.writeFileSync(path.join(dir, file), src);
}

try {
  main();
} catch (err) {
  process.stderr.write(`tfjs-binding-patch: ${err.message}\n`);
  process.exit(1);
}
