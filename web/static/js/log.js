// Debug logging: on with ?debug=1 in the address or localStorage "tuturu.debug" = "1". Logged
// actions are redacted so a shared console log leaks no PIN, SDP, credential or resume token.

export function debugEnabled(search, storage) {
  try {
    if (new URLSearchParams(search).get('debug') === '1') return true;
    return storage?.getItem('tuturu.debug') === '1';
  } catch {
    return false;
  }
}

const SECRET_KEYS = new Set(['pin', 'sdp', 'credential', 'password', 'username', 'token', 'resumeToken', 'candidate', 'value', 'traceparent']);

// redact copies a value, replacing secrets by a short description of what was there.
export function redact(value, depth = 0) {
  if (depth > 6 || value == null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out = {};
  for (const [k, v] of Object.entries(value)) {
    if (SECRET_KEYS.has(k) && v != null && typeof v !== 'object') out[k] = `<${k}: ${String(v).length} chars>`;
    else out[k] = redact(v, depth + 1);
  }
  return out;
}

export function createLog(enabled, sink = console) {
  return {
    enabled,
    debug: (...args) => {
      if (enabled) sink.debug('[tuturu]', ...args);
    },
    warn: (...args) => sink.warn('[tuturu]', ...args),
  };
}
