#!/usr/bin/env node
// Teaches tfjs-node's N-API binding (binding/tfjs_backend.cc) to set list(string) and list(type) op attributes,
// which its SetOpAttr rejects: TF_ATTR_STRING and TF_ATTR_TYPE accept a single value only. TensorFlow's fused ops
// need both (`fused_ops: ["BiasAdd", "Relu"]`, `TArgs: [DT_FLOAT]`), and training/kernels/tensorflow.ts runs oneDNN's
// fused convolution through them. A JavaScript array given for either attribute type becomes
// TFE_OpSetAttrStringList / TFE_OpSetAttrTypeList; a single value goes through the binding's own code as before, so
// every op tfjs-node itself runs is set up exactly as it was.
//
//   node scripts/tfjs-binding-attr-lists.js path/to/tfjs_backend.cc
//
// Run by scripts/setup-native.sh before it compiles the binding. Idempotent (a marker comment); fails loudly when
// the code it extends has changed, so a new tfjs-node version cannot silently build without it.
'use strict';
const fs = require('fs');

const MARKER = '// durable-train: list attributes';

const PATCHES = [
  {
    what: 'list(string) attributes',
    anchor: `    case TF_ATTR_STRING: {
`,
    insert: `      ${MARKER} (list(string))
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
    what: 'list(type) attributes',
    anchor: `    case TF_ATTR_TYPE: {
`,
    insert: `      ${MARKER} (list(type))
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
];

function main() {
  const file = process.argv[2];
  if (!file) throw new Error('usage: tfjs-binding-attr-lists.js path/to/tfjs_backend.cc');
  let src = fs.readFileSync(file, 'utf8');
  if (src.includes(MARKER)) return;
  for (const p of PATCHES) {
    const n = src.split(p.anchor).length - 1;
    if (n !== 1) throw new Error(`${file}: expected one "${p.anchor.trim()}" to add ${p.what}, found ${n}`);
    src = src.replace(p.anchor, p.anchor + p.insert);
  }
  if (!/#include <vector>/.test(src))
    src = src.replace('#include <string>\n', '#include <string>\n#include <vector>\n');
  fs.writeFileSync(file, src);
}

try {
  main();
} catch (err) {
  process.stderr.write(`tfjs-binding-attr-lists: ${err.message}\n`);
  process.exit(1);
}
