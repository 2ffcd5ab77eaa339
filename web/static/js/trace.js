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

// Support codes (docs/operations.md): 8 symbols from an alphabet without 0/O and 1/I, so a
// code read over the phone cannot be mistaken. The gateway's gateway/support.go has the same.
export const SUPPORT_ALPHABET = '23456789ABCDEFGHJKLMNPQRSTUVWXYZ';
const SUPPORT_RE = /^[2-9A-HJ-NP-Z]{8}$/;

// supportCodeOf is the support code of a trace: the first 40 bits of its id, 5 bits a symbol.
// The gateway puts the same code on the spans of the actions sent under that trace, so a
// failure this page detects itself can be found by the code. '' when traceId is not one.
export function supportCodeOf(traceId) {
  if (!/^[0-9a-f]{32}$/.test(traceId ?? '')) return '';
  let v = Number.parseInt(traceId.slice(0, 10), 16); // 40 bits: exact in a double
  let code = '';
  for (let i = 0; i < 8; i++) {
    code = SUPPORT_ALPHABET[v % 32] + code;
    v = Math.floor(v / 32);
  }
  return code;
}

// validSupportCode keeps a code the server sent only when it is one.
export function validSupportCode(code) {
  return typeof code === 'string' && SUPPORT_RE.test(code) ? code : '';
}
