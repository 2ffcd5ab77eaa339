// PIN helpers: what a caller may type or paste, and whether it is a valid PIN.

export const PIN_LENGTH = 6;

// sanitizePin keeps the ASCII digits of what was typed or pasted ("123 456", "123-456",
// full-width digits from some phone keyboards) and cuts to the PIN length.
export function sanitizePin(value) {
  const text = String(value ?? '').normalize('NFKC');
  let out = '';
  for (const ch of text) {
    if (ch >= '0' && ch <= '9') out += ch;
    if (out.length === PIN_LENGTH) break;
  }
  return out;
}

// validatePin returns null for a valid PIN, or a reason code the UI turns into words.
export function validatePin(pin) {
  if (typeof pin !== 'string' || pin.length === 0) return 'PIN_EMPTY';
  if (!/^[0-9]+$/.test(pin)) return 'PIN_NOT_DIGITS';
  if (pin.length !== PIN_LENGTH) return 'PIN_TOO_SHORT';
  return null;
}

// randomPin turns random bytes (crypto.getRandomValues in the browser) into a PIN without
// modulo bias: bytes >= 250 are skipped.
export function randomPin(bytes) {
  let out = '';
  for (const b of bytes) {
    if (b < 250) out += String(b % 10);
    if (out.length === PIN_LENGTH) return out;
  }
  return null; // not enough usable bytes; the caller draws more
}

// formatPin spaces a PIN for reading aloud: "123 456".
export function formatPin(pin) {
  return pin.length === PIN_LENGTH ? `${pin.slice(0, 3)} ${pin.slice(3)}` : pin;
}
