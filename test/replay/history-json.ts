// Workflow histories to and from the JSON of `temporal workflow show --output json`.
//
// Why not historyToJSON/historyFromJSON of @temporalio/common: in SDK 1.24 they check `instanceof Type` against
// the protobufjs copy that @temporalio/common resolves, while the History type comes from the copy that
// @temporalio/proto resolves. When npm installs separate copies for the two (our lockfile does: another package
// hoists protobufjs 7 to the top), both throw "type must be a Type". Using the protojson extension of the very
// copy @temporalio/proto loaded works whatever the layout.
import * as path from 'node:path';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';

export type History = proto.temporal.api.history.v1.IHistory;

interface ProtoJson {
  fromJson(type: unknown, json: unknown, options?: { ignoreUnknownFields?: boolean }): unknown;
  toJson(type: unknown, message: unknown): unknown;
}

const protoDir = path.dirname(require.resolve('@temporalio/proto/package.json'));
// eslint-disable-next-line @typescript-eslint/no-require-imports
const protojson = require(require.resolve('protobufjs/ext/protojson', { paths: [protoDir] })) as ProtoJson;
const historyType = (patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown }).lookupType(
  'temporal.api.history.v1.History',
);

/** Indented JSON text, as the Temporal CLI prints it. */
export function historyToJson(history: History): string {
  const message = proto.temporal.api.history.v1.History.fromObject(history);
  return JSON.stringify(protojson.toJson(historyType, message), null, 2) + '\n';
}

/** A History message the replay worker takes as is. Tolerates fields a newer server may add. */
export function historyFromJson(json: unknown): History {
  const history = protojson.fromJson(historyType, json, { ignoreUnknownFields: true }) as History | null;
  if (!history?.events?.length) throw new TypeError('not a workflow history: no events');
  return history;
}
