// The safety code: fingerprint extraction from SDPs and the words derived from them.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { WORDS, CODE_WORDS, fingerprintsOf, safetyInput, codeWords, safetyCode } from '../static/js/safety.js';

const FP_A = '5B:0F:7E:9A:11:C2:3D:44:E5:06:77:88:99:AA:BB:CC:DD:EE:FF:00:12:34:56:78:9A:BC:DE:F0:0F:1E:2D:3C';
const FP_B = '01:23:45:67:89:AB:CD:EF:FE:DC:BA:98:76:54:32:10:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF';
const FP_C = 'AA:23:45:67:89:AB:CD:EF:FE:DC:BA:98:76:54:32:10:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF';

// A bundled audio+video offer as Chromium writes it: the fingerprint in every media section.
const mediaLevel = (fp) => [
  'v=0', 'o=- 4611731400430051336 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0 1',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0', 'a=ice-ufrag:abcd', 'a=ice-pwd:0123456789abcdef01234567',
  `a=fingerprint:sha-256 ${fp}`, 'a=setup:actpass', 'a=mid:0', 'a=rtpmap:111 opus/48000/2',
  'm=video 9 UDP/TLS/RTP/SAVPF 96', 'c=IN IP4 0.0.0.0', 'a=ice-ufrag:abcd', 'a=ice-pwd:0123456789abcdef01234567',
  `a=fingerprint:sha-256 ${fp}`, 'a=setup:actpass', 'a=mid:1', 'a=rtpmap:96 VP8/90000', '',
].join('\r\n');

// An answer with one session-level fingerprint, as Firefox writes it (upper-case algorithm, LF only).
const sessionLevel = (fp) => [
  'v=0', 'o=mozilla...THIS_IS_SDPARTA-99.0 1 0 IN IP4 0.0.0.0', 's=-', 't=0 0',
  `a=fingerprint:SHA-256 ${fp}`, 'a=group:BUNDLE 0 1',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'a=mid:0', 'm=video 9 UDP/TLS/RTP/SAVPF 96', 'a=mid:1', '',
].join('\n');

const noFingerprint = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\n';

describe('word list', () => {
  test('256 distinct short lower-case words: one per byte value', () => {
    assert.equal(WORDS.length, 256);
    assert.equal(new Set(WORDS).size, 256);
    for (const w of WORDS) assert.match(w, /^[a-z]{3,7}$/, w);
    assert.ok(Object.isFrozen(WORDS));
  });
});

describe('fingerprintsOf', () => {
  test('media-level lines: one value, repeats removed', () => {
    assert.deepEqual(fingerprintsOf(mediaLevel(FP_A)), [`sha-256 ${FP_A}`]);
  });

  test('a session-level line', () => {
    assert.deepEqual(fingerprintsOf(sessionLevel(FP_B)), [`sha-256 ${FP_B}`]);
  });

  test('session-level and media-level lines together, sorted', () => {
    const sdp = sessionLevel(FP_B).replace('a=mid:1', `a=mid:1\na=fingerprint:sha-256 ${FP_A}`);
    assert.deepEqual(fingerprintsOf(sdp), [`sha-256 ${FP_B}`, `sha-256 ${FP_A}`].sort());
  });

  test('case is normalised: algorithm lower, hex upper', () => {
    const sdp = `v=0\r\na=fingerprint:SHA-256 ${FP_A.toLowerCase()}\r\n`;
    assert.deepEqual(fingerprintsOf(sdp), [`sha-256 ${FP_A}`]);
  });

  test('no fingerprint, malformed lines and non-strings give nothing', () => {
    assert.deepEqual(fingerprintsOf(noFingerprint), []);
    assert.deepEqual(fingerprintsOf('a=fingerprint:sha-256\r\na=fingerprint:sha-256 not-hex\r\nx=a=fingerprint:sha-256 AB:CD\r\n'), []);
    assert.deepEqual(fingerprintsOf(''), []);
    assert.deepEqual(fingerprintsOf(undefined), []);
    assert.deepEqual(fingerprintsOf({ sdp: mediaLevel(FP_A) }), []);
  });
});

describe('safety code', () => {
  test('the derivation: SHA-256 of the context and both sorted fingerprints, one word per byte', async () => {
    const input = safetyInput(mediaLevel(FP_A), sessionLevel(FP_B));
    assert.equal(input, `tuturu safety code v1\nsha-256 ${FP_B}\nsha-256 ${FP_A}`);
    const digest = createHash('sha256').update(input).digest();
    const expected = [...digest.subarray(0, CODE_WORDS)].map((b) => WORDS[b]);
    assert.deepEqual(await safetyCode(mediaLevel(FP_A), sessionLevel(FP_B)), expected);
    assert.equal(expected.length, CODE_WORDS);
    assert.deepEqual(codeWords(new Uint8Array([0, 255, 1, 254, 2, 253, 3])), ['acorn', 'zoo', 'apple', 'zebra', 'apron', 'wolf']);
  });

  test('both sides get the same code: the order of local and remote does not matter', async () => {
    const offer = mediaLevel(FP_A);
    const answer = sessionLevel(FP_B);
    const offerer = await safetyCode(offer, answer);
    const answerer = await safetyCode(answer, offer);
    assert.deepEqual(offerer, answerer);
    assert.equal(offerer.length, CODE_WORDS);
    for (const w of offerer) assert.ok(WORDS.includes(w));
  });

  test('the same fingerprints written differently give the same code', async () => {
    const lower = `v=0\na=fingerprint:sha-256 ${FP_A.toLowerCase()}\n`;
    assert.deepEqual(await safetyCode(lower, sessionLevel(FP_B)), await safetyCode(mediaLevel(FP_A), mediaLevel(FP_B)));
  });

  test('a swapped fingerprint on either side gives a different code', async () => {
    const real = await safetyCode(mediaLevel(FP_A), mediaLevel(FP_B));
    // What each side computes when the server replaced B's fingerprint by C on its way to A.
    const seenByA = await safetyCode(mediaLevel(FP_A), mediaLevel(FP_C));
    assert.notDeepEqual(seenByA, real);
    assert.notDeepEqual(await safetyCode(mediaLevel(FP_C), mediaLevel(FP_B)), real);
    // A fingerprint added next to the real one changes the code too.
    const extra = mediaLevel(FP_B).replace('a=mid:1', `a=mid:1\r\na=fingerprint:sha-256 ${FP_C}`);
    assert.notDeepEqual(await safetyCode(mediaLevel(FP_A), extra), real);
  });

  test('no fingerprint on either side, or no SubtleCrypto: no code', async () => {
    assert.equal(safetyInput(noFingerprint, mediaLevel(FP_B)), null);
    assert.equal(await safetyCode(mediaLevel(FP_A), noFingerprint), null);
    assert.equal(await safetyCode(noFingerprint, mediaLevel(FP_B)), null);
    assert.equal(await safetyCode(noFingerprint, noFingerprint), null);
    assert.equal(await safetyCode(undefined, mediaLevel(FP_B)), null);
    assert.equal(await safetyCode(mediaLevel(FP_A), mediaLevel(FP_B), null), null);
  });
});
