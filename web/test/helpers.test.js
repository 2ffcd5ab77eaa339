// The pure helpers: PIN, error words, stats and quality, trace context, redaction, view rules.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { sanitizePin, validatePin, randomPin, formatPin } from '../static/js/pin.js';
import { describeServerError, describeClose, describeMediaError, describePinProblem, callProblems, supportText } from '../static/js/errors.js';
import { selectedPair, pathOf, totalsOf, sampleOf, updateQuality, levelOf, describeQuality, qualityWord, qualityFigures, initialQuality, HOLD_SAMPLES } from '../static/js/quality.js';
import { traceparent, traceIdOf, supportCodeOf, validSupportCode, SUPPORT_ALPHABET } from '../static/js/trace.js';
import { redact, debugEnabled, createLog } from '../static/js/log.js';
import { screenOf, focusTarget, statusText, safetyText } from '../static/js/view.js';
import { clampOffset } from '../static/js/drag.js';
import { Phase, initialState } from '../static/js/state.js';

describe('pin', () => {
  test('sanitize keeps ASCII digits from typing, pasting and phone keyboards', () => {
    assert.equal(sanitizePin('123456'), '123456');
    assert.equal(sanitizePin(' 12 34 56 '), '123456');
    assert.equal(sanitizePin('PIN: 123-456, thanks'), '123456');
    assert.equal(sanitizePin('1234567890'), '123456');
    assert.equal(sanitizePin('٣'), '', 'Arabic-Indic digits are not ASCII digits');
    assert.equal(sanitizePin('１２３'), '123', 'full-width digits are normalised');
    assert.equal(sanitizePin(null), '');
    assert.equal(sanitizePin(undefined), '');
    assert.equal(sanitizePin(123456), '123456');
  });

  test('validate', () => {
    assert.equal(validatePin('123456'), null);
    assert.equal(validatePin('000000'), null);
    assert.equal(validatePin(''), 'PIN_EMPTY');
    assert.equal(validatePin(undefined), 'PIN_EMPTY');
    assert.equal(validatePin('12a456'), 'PIN_NOT_DIGITS');
    assert.equal(validatePin('12345'), 'PIN_TOO_SHORT');
    assert.equal(validatePin('1234567'), 'PIN_TOO_SHORT');
  });

  test('randomPin is 6 digits and skips biased bytes', () => {
    assert.equal(randomPin([0, 1, 2, 3, 4, 5]), '012345');
    assert.equal(randomPin([255, 250, 9, 19, 29, 39, 49, 59]), '999999');
    assert.equal(randomPin([255, 255]), null);
    for (let i = 0; i < 50; i++) {
      const p = randomPin(crypto.getRandomValues(new Uint8Array(12)));
      if (p) assert.match(p, /^[0-9]{6}$/);
    }
  });

  test('formatPin groups for reading aloud', () => {
    assert.equal(formatPin('123456'), '123 456');
    assert.equal(formatPin('12'), '12');
  });
});

describe('errors in words', () => {
  test('every server code the gateway sends has words and an action', () => {
    for (const code of ['INVALID_PIN', 'ROOM_FULL', 'INVALID_MESSAGE', 'ALREADY_JOINED', 'NOT_IN_ROOM', 'RATE_LIMITED', 'JOIN_RATE_LIMITED', 'TOO_MANY_SOCKETS', 'MESSAGE_TOO_BIG', 'RESUME_FAILED', 'SERVICE_UNAVAILABLE', 'ROOM_CLOSED', 'INTERNAL']) {
      const d = describeServerError(code, 'server text', '123456');
      assert.ok(d.title && d.text, code);
      assert.ok(['retry', 'edit-pin', 'reload'].includes(d.action), code);
    }
  });

  test('room full names the PIN; unknown codes keep the server text', () => {
    assert.match(describeServerError('ROOM_FULL', 'Room 123456 is full (maximum 2 clients)', '123456').text, /PIN 123456/);
    const d = describeServerError('BRAND_NEW', 'Something new happened', '1');
    assert.equal(d.code, 'BRAND_NEW');
    assert.equal(d.text, 'Something new happened.');
    assert.equal(describeServerError('', '').code, 'SERVER_ERROR');
  });

  test('join rate limit says how long to wait', () => {
    assert.match(describeServerError('JOIN_RATE_LIMITED', '', '', 1500).text, /Wait 2 seconds/);
    assert.match(describeServerError('JOIN_RATE_LIMITED', '', '').text, /Wait a minute/);
  });

  test('too many sockets says to close tabs and how long to wait', () => {
    const d = describeServerError('TOO_MANY_SOCKETS', 'Too many open connections from your address (at most 64)', '', 30000);
    assert.equal(d.title, 'Too many connections');
    assert.match(d.text, /Close tabs/);
    assert.match(d.text, /wait 30 seconds/);
  });

  test('close codes', () => {
    assert.equal(describeClose(1008).code, 'CLOSE_POLICY');
    assert.equal(describeClose(1009).code, 'CLOSE_TOO_BIG');
    assert.equal(describeClose(1011).code, 'CLOSE_SERVER_ERROR');
    assert.equal(describeClose(1013).code, 'CLOSE_TRY_LATER');
    assert.equal(describeClose(1012).code, 'CLOSE_TRY_LATER');
    assert.equal(describeClose(1001).code, 'CLOSE_GOING_AWAY');
    assert.equal(describeClose(1006).code, 'CLOSE_NETWORK');
    assert.equal(describeClose(undefined).code, 'CLOSE_NETWORK');
  });

  test('media errors, including the legacy Chrome names', () => {
    assert.equal(describeMediaError('PermissionDeniedError').code, 'MEDIA_DENIED');
    assert.equal(describeMediaError('DevicesNotFoundError').code, 'MEDIA_NOT_FOUND');
    assert.equal(describeMediaError('TrackStartError').code, 'MEDIA_IN_USE');
    assert.equal(describeMediaError('ConstraintNotSatisfiedError').code, 'MEDIA_CONSTRAINTS');
    assert.equal(describeMediaError('SecurityError').code, 'MEDIA_INSECURE');
    assert.equal(describeMediaError('NotSupported').code, 'MEDIA_UNSUPPORTED');
    assert.match(describeMediaError('NotAllowedError').text, /site settings/);
  });

  test('PIN problems and call problems', () => {
    assert.equal(describePinProblem('PIN_NOT_DIGITS').code, 'PIN_NOT_DIGITS');
    assert.match(describePinProblem('nope').text, /6-digit/);
    for (const p of Object.values(callProblems)) assert.ok(p.title && p.text && p.action);
  });
});

// A Chromium-shaped stats report with a selected pair.
const report = ({ localType = 'host', remoteType = 'host', rtt = 0.05, bytes = 0, packets = 0, lost = 0, frames = 0, ts = 1000 } = {}) => [
  { id: 'T1', type: 'transport', selectedCandidatePairId: 'CP1' },
  { id: 'CP1', type: 'candidate-pair', localCandidateId: 'L1', remoteCandidateId: 'R1', state: 'succeeded', nominated: true, currentRoundTripTime: rtt },
  { id: 'CP2', type: 'candidate-pair', localCandidateId: 'L2', remoteCandidateId: 'R1', state: 'failed' },
  { id: 'L1', type: 'local-candidate', candidateType: localType },
  { id: 'L2', type: 'local-candidate', candidateType: 'relay' },
  { id: 'R1', type: 'remote-candidate', candidateType: remoteType },
  { id: 'IV', type: 'inbound-rtp', kind: 'video', bytesReceived: bytes, packetsReceived: packets, packetsLost: lost, framesDecoded: frames, timestamp: ts },
  { id: 'IA', type: 'inbound-rtp', kind: 'audio', bytesReceived: 0, packetsReceived: 0, packetsLost: 0, timestamp: ts },
];

describe('path and quality', () => {
  test('path from the selected pair', () => {
    assert.equal(pathOf(report()), 'direct');
    assert.equal(pathOf(report({ localType: 'srflx', remoteType: 'prflx' })), 'direct');
    assert.equal(pathOf(report({ localType: 'relay' })), 'relay');
    assert.equal(pathOf(report({ remoteType: 'relay' })), 'relay');
    assert.equal(pathOf([]), null);
  });

  test('selected pair: Firefox flag, then nominated and succeeded', () => {
    const ff = [{ id: 'a', type: 'candidate-pair', selected: true }, { id: 'b', type: 'candidate-pair' }];
    assert.equal(selectedPair(ff).id, 'a');
    const nom = [{ id: 'a', type: 'candidate-pair', nominated: true, state: 'in-progress' }, { id: 'b', type: 'candidate-pair', nominated: true, state: 'succeeded' }];
    assert.equal(selectedPair(nom).id, 'b');
    const dangling = [{ id: 'T', type: 'transport', selectedCandidatePairId: 'gone' }];
    assert.equal(selectedPair(dangling), null);
  });

  test('totals and a sample over an interval', () => {
    const t = totalsOf(report({ bytes: 1000, packets: 10, lost: 1, frames: 30 }));
    assert.deepEqual(t, { bytes: 1000, packets: 10, lost: 1, framesDecoded: 30, timestamp: 1000 });
    const first = sampleOf(null, report({ bytes: 1000, packets: 100, ts: 1000 }));
    assert.equal(first.sample.kbps, null, 'no rate from one snapshot');
    assert.equal(first.sample.rttMs, 50);
    const idle = sampleOf(totalsOf(report({ bytes: 0, ts: 500 })), report({ bytes: 1000, packets: 100, ts: 1000 }));
    assert.equal(idle.sample.kbps, null, 'no rate before media flowed');
    const second = sampleOf(first.totals, report({ bytes: 126000, packets: 190, lost: 10, ts: 2000 }));
    assert.equal(second.sample.kbps, 1000);
    assert.equal(second.sample.lossPct, 10);
    assert.equal(second.sample.path, 'direct');
  });

  test('a reset counter never gives negative figures', () => {
    const a = sampleOf(null, report({ bytes: 5000, packets: 100, ts: 1000 }));
    const b = sampleOf(a.totals, report({ bytes: 0, packets: 100, lost: 0, ts: 2000 }));
    assert.equal(b.sample.kbps, 0);
    assert.equal(b.sample.lossPct, null);
  });

  test('levels', () => {
    assert.equal(levelOf({ rttMs: 50, lossPct: 0 }), 'good');
    assert.equal(levelOf({ rttMs: 300, lossPct: 0 }), 'fair');
    assert.equal(levelOf({ rttMs: 50, lossPct: 5 }), 'fair');
    assert.equal(levelOf({ rttMs: 700, lossPct: 0 }), 'poor');
    assert.equal(levelOf({ rttMs: null, lossPct: 9 }), 'poor');
    assert.equal(levelOf({ rttMs: null, lossPct: null }), null);
  });

  test('the first measurement shows at once', () => {
    assert.equal(updateQuality(initialQuality, { rttMs: 30, lossPct: 0 }).level, 'good');
  });

  test('one bad sample does not flip the indicator (hysteresis)', () => {
    let q = updateQuality(initialQuality, { rttMs: 30, lossPct: 0, kbps: 800 });
    q = updateQuality(q, { rttMs: 3000, lossPct: 0 }); // a spike: the average jumps to ~920 ms
    assert.equal(q.level, 'good');
    assert.equal(q.pending, 'poor');
    q = updateQuality(q, { rttMs: 30, lossPct: 0 });
    q = updateQuality(q, { rttMs: 30, lossPct: 0 });
    q = updateQuality(q, { rttMs: 30, lossPct: 0 });
    q = updateQuality(q, { rttMs: 30, lossPct: 0 });
    assert.equal(q.level, 'good', 'the spike decayed before it was shown');
  });

  test('a lasting change is shown after HOLD_SAMPLES samples', () => {
    let q = updateQuality(initialQuality, { rttMs: 30, lossPct: 0 });
    const seen = [];
    for (let i = 0; i < 10; i++) {
      q = updateQuality(q, { rttMs: 900, lossPct: 15 });
      seen.push(q.level);
    }
    assert.equal(q.level, 'poor');
    const firstPoor = seen.indexOf('poor');
    assert.ok(firstPoor >= HOLD_SAMPLES - 1, `switched after ${firstPoor + 1} samples`);
    // No flapping: once it moved it stays while the network stays bad.
    assert.ok(seen.slice(firstPoor).every((l) => l === 'poor'));
  });

  test('alternating samples around a threshold never flicker', () => {
    let q = updateQuality(initialQuality, { rttMs: 240, lossPct: 0 });
    let changes = 0;
    let last = q.level;
    for (let i = 0; i < 40; i++) {
      q = updateQuality(q, { rttMs: i % 2 ? 200 : 300, lossPct: 0 });
      if (q.level !== last) changes++;
      last = q.level;
    }
    assert.ok(changes <= 1, `level changed ${changes} times`);
  });

  test('describeQuality reads well', () => {
    assert.equal(describeQuality(initialQuality), 'Measuring connection quality');
    const q = { ...initialQuality, level: 'good', rttMs: 42.4, kbps: 1500, lossPct: 0.25 };
    assert.equal(describeQuality(q), 'Good connection: delay 42 ms, 1.5 Mbit/s, 0.3% loss');
    assert.equal(describeQuality({ ...initialQuality, level: 'poor', kbps: 80 }), 'Poor connection: 80 kbit/s');
    assert.equal(qualityWord(q), 'Good');
    assert.equal(qualityWord(initialQuality), '');
    assert.equal(qualityFigures(q), 'delay 42 ms, 1.5 Mbit/s, 0.3% loss');
    assert.equal(qualityFigures(initialQuality), '');
  });
});

describe('trace context', () => {
  test('traceparent format', () => {
    const tp = traceparent(Array.from({ length: 24 }, (_, i) => i + 1));
    assert.equal(tp, '00-0102030405060708090a0b0c0d0e0f10-1112131415161718-01');
    assert.equal(traceIdOf(tp), '0102030405060708090a0b0c0d0e0f10');
  });
  test('all-zero ids are made valid', () => {
    const tp = traceparent(new Uint8Array(24));
    assert.equal(tp, '00-00000000000000000000000000000001-0000000000000001-01');
  });
  test('bad input', () => {
    assert.throws(() => traceparent(new Uint8Array(3)));
    assert.equal(traceIdOf('garbage'), '');
    assert.equal(traceIdOf(undefined), '');
  });
});

describe('support code', () => {
  test('the first 40 bits of the trace id, as the gateway computes it (e2e TestBrowserErrorSupportCode)', () => {
    assert.equal(supportCodeOf('4bf92f3577b34da6a3ce929d0e0e4736'), 'BHWLYFDR');
    assert.equal(supportCodeOf('00000000000000000000000000000001'), '22222222');
    assert.equal(supportCodeOf('ffffffffff0000000000000000000000'), 'ZZZZZZZZ');
    assert.equal(supportCodeOf(traceIdOf(traceparent(Array.from({ length: 24 }, (_, i) => i + 1)))), '26328327');
  });
  test('nothing for what is not a trace id', () => {
    assert.equal(supportCodeOf(''), '');
    assert.equal(supportCodeOf(undefined), '');
    assert.equal(supportCodeOf('4BF92F3577B34DA6A3CE929D0E0E4736'), '');
  });
  test('the alphabet has no symbol to mistake over the phone', () => {
    assert.equal(SUPPORT_ALPHABET.length, 32);
    assert.doesNotMatch(SUPPORT_ALPHABET, /[01IO]/);
  });
  test('a server code is kept only when it is one', () => {
    assert.equal(validSupportCode('BHWLYFDR'), 'BHWLYFDR');
    assert.equal(validSupportCode('BHWLYFD0'), '');
    assert.equal(validSupportCode('bhwlyfdr'), '');
    assert.equal(validSupportCode('<b>x</b>'), '');
    assert.equal(validSupportCode(42), '');
  });
  test('wording', () => {
    assert.equal(supportText('BHWLYFDR'), 'Support code: BHWLYFDR. If you ask for help, give this code.');
    assert.equal(supportText(''), '');
    assert.equal(supportText(null), '');
  });
});

describe('debug log', () => {
  test('enabled by ?debug=1 or localStorage', () => {
    assert.equal(debugEnabled('?debug=1', null), true);
    assert.equal(debugEnabled('?debug=0', null), false);
    assert.equal(debugEnabled('', { getItem: (k) => (k === 'tuturu.debug' ? '1' : null) }), true);
    assert.equal(debugEnabled('', { getItem: () => { throw new Error('blocked'); } }), false);
  });

  test('redaction hides PIN, SDP, credentials and tokens', () => {
    const a = {
      type: 'SOCKET_MESSAGE',
      msg: { type: 'join-pin', data: { iceServers: [{ urls: ['turn:x'], username: '1:u', credential: 'secret' }], resumeToken: 'tok', role: 'first' } },
    };
    const r = JSON.stringify(redact(a));
    assert.ok(!r.includes('secret') && !r.includes('"tok"') && !r.includes('1:u'), r);
    assert.ok(r.includes('turn:x') && r.includes('first'));
    assert.ok(!JSON.stringify(redact({ type: 'PIN_CHANGED', value: '123456' })).includes('123456'));
    assert.ok(!JSON.stringify(redact({ description: { type: 'offer', sdp: 'v=0 secretsdp' } })).includes('secretsdp'));
    assert.ok(!JSON.stringify(redact({ candidate: { candidate: 'candidate:1 1 udp 1 10.0.0.1 5 typ host' } })).includes('10.0.0.1'));
    assert.equal(redact('plain'), 'plain');
  });

  test('debug lines only when enabled, warnings always', () => {
    const lines = [];
    const sink = { debug: (...a) => lines.push(['debug', ...a]), warn: (...a) => lines.push(['warn', ...a]) };
    createLog(false, sink).debug('x');
    createLog(false, sink).warn('w');
    createLog(true, sink).debug('y');
    assert.deepEqual(lines, [['warn', '[tuturu]', 'w'], ['debug', '[tuturu]', 'y']]);
  });
});

describe('view rules', () => {
  test('every phase has a screen and a focus rule', () => {
    for (const phase of Object.values(Phase)) {
      assert.ok(['pin', 'busy', 'stage', 'end'].includes(screenOf(phase)), phase);
      assert.notEqual(focusTarget(phase), undefined, phase);
    }
    assert.equal(screenOf(Phase.RECONNECTING), 'stage');
    assert.equal(focusTarget(Phase.RECONNECTING), null, 'focus stays put while reconnecting');
    assert.equal(focusTarget(Phase.PIN), 'pin');
  });

  test('status line', () => {
    const s = initialState();
    assert.equal(statusText(s), '');
    assert.equal(statusText({ ...s, phase: Phase.CALL, path: 'relay' }), 'Connected through the relay server.');
    assert.equal(statusText({ ...s, phase: Phase.CALL, path: 'direct' }), 'Connected.');
    assert.equal(statusText({ ...s, notice: { code: 'x', text: 'Hello' } }), 'Hello');
  });

  test('safety code: the words, only while there is another person', () => {
    const s = { ...initialState(), safety: ['acorn', 'tiger', 'pearl', 'zoo'] };
    for (const phase of [Phase.NEGOTIATING, Phase.CALL, Phase.RECONNECTING]) {
      assert.equal(safetyText({ ...s, phase }), 'acorn tiger pearl zoo', phase);
    }
    for (const phase of [Phase.PIN, Phase.WAITING, Phase.ENDED, Phase.ERROR]) assert.equal(safetyText({ ...s, phase }), '', phase);
    assert.equal(safetyText({ ...s, phase: Phase.CALL, safety: null }), '');
  });
});

describe('self-view dragging', () => {
  test('offsets stay inside the container', () => {
    assert.deepEqual(clampOffset(-50, -60, 100, 80, 400, 300), { x: -50, y: -60 });
    assert.deepEqual(clampOffset(20, 30, 100, 80, 400, 300), { x: 0, y: 0 });
    assert.deepEqual(clampOffset(-999, -999, 100, 80, 400, 300), { x: -300, y: -220 });
  });
});
