// The safety code: a few words both people can read aloud to check that nobody sits in the
// middle of their call. Media is encrypted end to end with DTLS, but the certificates'
// fingerprints travel in the SDP through the signaling server, which could swap them for its
// own. Each browser hashes the fingerprint it presents and the one it was given, in sorted
// order, so both see the same words only when each got the other's real fingerprint.
// Pure: no DOM, no peer connection; the hash comes from the SubtleCrypto passed in.

// WORDS has one short, common English word per byte value, chosen so that no two sound much
// alike when read aloud over a poor line.
export const WORDS = Object.freeze([
  'acorn', 'apple', 'apron', 'arch', 'arm', 'arrow', 'atlas', 'badge', 'baker', 'ball', 'bamboo', 'banana',
  'band', 'barn', 'basket', 'bath', 'beach', 'bean', 'bear', 'bed', 'bee', 'bell', 'bench', 'berry',
  'bike', 'bird', 'blanket', 'boat', 'bone', 'book', 'bottle', 'bowl', 'box', 'bread', 'brick', 'bridge',
  'broom', 'brush', 'bucket', 'bus', 'butter', 'button', 'cable', 'cactus', 'cake', 'camel', 'camera', 'camp',
  'candle', 'canoe', 'car', 'carpet', 'carrot', 'castle', 'cat', 'chair', 'chalk', 'cheese', 'cherry', 'chess',
  'chicken', 'circle', 'city', 'cliff', 'clock', 'cloud', 'coffee', 'comet', 'cookie', 'corn', 'cotton', 'cow',
  'crab', 'crown', 'cup', 'curtain', 'daisy', 'desert', 'desk', 'diamond', 'dinner', 'dog', 'donkey', 'door',
  'dragon', 'drum', 'duck', 'eagle', 'earth', 'egg', 'engine', 'farm', 'feather', 'fence', 'field', 'fire',
  'fish', 'flag', 'flower', 'flute', 'forest', 'fork', 'fox', 'frog', 'fruit', 'garden', 'giant', 'glass',
  'glove', 'goat', 'gold', 'grape', 'grass', 'guitar', 'hammer', 'harbor', 'harp', 'hat', 'helmet', 'hill',
  'honey', 'horse', 'hotel', 'house', 'igloo', 'island', 'jacket', 'jar', 'jelly', 'jungle', 'kettle', 'key',
  'kitten', 'kiwi', 'ladder', 'lake', 'lamp', 'lemon', 'lion', 'lizard', 'lobster', 'lock', 'magnet', 'mango',
  'map', 'marble', 'market', 'melon', 'metal', 'milk', 'mirror', 'monkey', 'moon', 'motor', 'mouse', 'muffin',
  'music', 'needle', 'nest', 'noodle', 'ocean', 'olive', 'onion', 'orange', 'otter', 'owl', 'oyster', 'paint',
  'palace', 'panda', 'paper', 'parrot', 'pasta', 'peanut', 'pearl', 'pencil', 'penguin', 'piano', 'picnic', 'pillow',
  'pirate', 'pizza', 'planet', 'plate', 'pocket', 'pony', 'potato', 'pumpkin', 'purple', 'queen', 'rabbit', 'radio',
  'rain', 'rainbow', 'ribbon', 'rice', 'river', 'rocket', 'roof', 'rose', 'ruler', 'saddle', 'salad', 'sand',
  'school', 'seal', 'shadow', 'shark', 'shell', 'ship', 'shirt', 'shoe', 'silver', 'skate', 'snail', 'snake',
  'snow', 'soap', 'sock', 'sofa', 'spider', 'spoon', 'square', 'stamp', 'star', 'stone', 'storm', 'sugar',
  'summer', 'sun', 'swan', 'table', 'tent', 'ticket', 'tiger', 'toast', 'tomato', 'tower', 'tractor', 'train',
  'tree', 'truck', 'tulip', 'turtle', 'valley', 'violin', 'wagon', 'wallet', 'walnut', 'whale', 'wheel', 'window',
  'winter', 'wolf', 'zebra', 'zoo',
]);

// CODE_WORDS is how many bytes of the hash are shown. A server in the middle picks its own
// fingerprint last, after seeing the others, and can try fresh certificates until the two codes
// match: 4 words (32 bits) fall to one GPU in seconds, 6 words (48 bits) would take thousands
// of GPUs within the 30 s a call set-up may last, and still read aloud in a few seconds.
export const CODE_WORDS = 6;

// Hashed before the fingerprints, so these words mean nothing in any other protocol; the
// version changes if the derivation ever does (both sides must agree on it).
const CONTEXT = 'tuturu safety code v1';

const FINGERPRINT_LINE = /^a=fingerprint:[ \t]*(\S+)[ \t]+([0-9a-f]{2}(?::[0-9a-f]{2})+)[ \t]*$/i;

// fingerprintsOf lists the `a=fingerprint:` values of an SDP, session-level and media-level,
// as "algorithm HEX:HEX:…" (algorithm in lower case, hex in upper case, as browsers differ),
// sorted and without repeats (a bundled call repeats the same line in every media section).
export function fingerprintsOf(sdp) {
  if (typeof sdp !== 'string') return [];
  const found = new Set();
  for (const line of sdp.split(/\r?\n/)) {
    const m = FINGERPRINT_LINE.exec(line);
    if (m) found.add(`${m[1].toLowerCase()} ${m[2].toUpperCase()}`);
  }
  return [...found].sort();
}

// safetyInput is the text that is hashed: the two sides' fingerprints, sorted so it does not
// matter which side computes it; null when either side has none (no DTLS, nothing to check).
export function safetyInput(localSdp, remoteSdp) {
  const local = fingerprintsOf(localSdp).join(',');
  const remote = fingerprintsOf(remoteSdp).join(',');
  if (!local || !remote) return null;
  return [CONTEXT, ...[local, remote].sort()].join('\n');
}

// codeWords turns the first CODE_WORDS bytes of a hash into words.
export function codeWords(bytes) {
  return Array.from(bytes.subarray(0, CODE_WORDS), (b) => WORDS[b]);
}

// safetyCode resolves to the words for a local and a remote description, or null when either
// has no fingerprint or there is no SubtleCrypto (only pages on https or localhost have it).
export async function safetyCode(localSdp, remoteSdp, subtle = globalThis.crypto?.subtle) {
  const input = safetyInput(localSdp, remoteSdp);
  if (!input || !subtle) return null;
  const digest = await subtle.digest('SHA-256', new TextEncoder().encode(input));
  return codeWords(new Uint8Array(digest));
}
