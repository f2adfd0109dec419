// An activity's failure must fit what Temporal keeps. The server stores a retried activity's last failure in the
// run's mutable state only up to a size limit (4 KB by default: limit.mutableStateActivityFailureSize.error); a
// larger one is replaced by the bare text "Failure exceeds size limit.", so the reason (an S3 5xx, a full disk)
// is lost exactly when someone needs it. Long chains are common here: a storage failure wraps the store's error,
// which wraps the AWS SDK's, each with a stack that repeats its message. Bounding happens once, in a worker
// interceptor, for every activity: messages are cut to a budget, stacks to a few frames, the chain to a few causes.
// The failure's class, type, retry flag and details are kept as they are.
import { log } from '@temporalio/activity';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, Next } from '@temporalio/worker';

/** Characters of message and stack text over the whole cause chain: well under 4 KB once framed as a protobuf. */
export const FAILURE_TEXT_BUDGET = 2400;
const TOP_MESSAGE_CHARS = 1000;
const CAUSE_MESSAGE_CHARS = 300;
const MAX_CAUSES = 3;
const FRAMES = 5;

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function setOwn(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, configurable: true, enumerable: false });
}

/** The stack as the failure converter reads it: "Name: message" (already cut) and at most `frames` frames. */
function shortStack(e: Error, frames: number): string {
  const lines = (e.stack ?? '').split(/\r?\n/).filter((l) => /^\s+at /.test(l));
  return [`${e.name}: ${e.message}`, ...lines.slice(0, frames)].join('\n');
}

function textSize(chain: Error[]): number {
  return chain.reduce((n, e) => n + e.message.length + (e.stack?.length ?? 0), 0);
}

/**
 * Bounds `err` (an Error and its `cause` chain) in place so that Temporal keeps it whole, and returns it. Anything
 * that is not an Error is returned unchanged.
 */
export function boundFailure(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const chain: Error[] = [];
  for (let e: unknown = err; e instanceof Error && chain.length <= MAX_CAUSES; e = e.cause) chain.push(e);
  const last = chain[chain.length - 1];
  const dropped = last.cause !== undefined;
  if (dropped) setOwn(last, 'cause', undefined);
  chain.forEach((e, i) => {
    const max = i === 0 ? TOP_MESSAGE_CHARS : CAUSE_MESSAGE_CHARS;
    const tail = dropped && e === last ? ' (deeper causes dropped)' : '';
    setOwn(e, 'message', `${cut(e.message, max - tail.length)}${tail}`);
    setOwn(e, 'stack', shortStack(e, i === 0 ? FRAMES : 2));
  });
  // Still too long: the causes keep their messages only, then the failure keeps its first frames only.
  if (textSize(chain) > FAILURE_TEXT_BUDGET) chain.slice(1).forEach((e) => setOwn(e, 'stack', shortStack(e, 0)));
  if (textSize(chain) > FAILURE_TEXT_BUDGET) setOwn(err, 'stack', shortStack(err, 2));
  return err;
}

/** The messages of an error's cause chain (at most `max`), for the worker log. */
function messagesOf(err: unknown, max = 10): string[] {
  const out: string[] = [];
  for (let e: unknown = err; e instanceof Error && out.length < max; e = e.cause) out.push(`${e.name}: ${e.message}`);
  return out;
}

/**
 * The worker's activity interceptor: every activity failure leaves the worker bounded. When bounding cut something,
 * the worker log keeps every message of the chain in full.
 */
export class BoundedFailures implements ActivityInboundCallsInterceptor {
  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    try {
      return await next(input);
    } catch (err) {
      const full = messagesOf(err);
      const bounded = boundFailure(err);
      if (messagesOf(bounded).join('\n') !== full.join('\n'))
        log.warn('activity failure cut to fit what Temporal keeps; its full messages', { messages: full });
      throw bounded;
    }
  }
}
