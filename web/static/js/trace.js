// W3C trace context for messages the caller starts (join, resume, leave), so the gateway
// continues the browser's trace and a debug console line can be matched to a trace.

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

// traceparent builds a sampled version-00 traceparent from 24 random bytes
// (16 for the trace id, 8 for the span id). All-zero ids are invalid, so they are bumped.
export function traceparent(random) {
  if (!random || random.length < 24) throw new Error('traceparent needs 24 random bytes');
  const traceId = Uint8Array.from(random.slice(0, 16));
  const spanId = Uint8Array.from(random.slice(16, 24));
  if (traceId.every((b) => b === 0)) traceId[15] = 1;
  if (spanId.every((b) => b === 0)) spanId[7] = 1;
  return `00-${hex(traceId)}-${hex(spanId)}-01`;
}

// traceIdOf returns the trace id part of a traceparent, or '' when it is not one.
export function traceIdOf(tp) {
  const m = /^00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(tp ?? '');
  return m ? m[1] : '';
}
