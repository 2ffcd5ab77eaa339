// Every transition and guard of the client's reducer.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { initialState, reduce, Phase, Timing, normalizeSession } from '../static/js/state.js';

const types = (effects) => effects.map((e) => e.type);
const find = (effects, type) => effects.find((e) => e.type === type);
const sent = (effects) => effects.filter((e) => e.type === 'socket.send').map((e) => e.msg);
const timersStarted = (effects) => effects.filter((e) => e.type === 'timer.start').map((e) => e.name);
const timersCancelled = (effects) => effects.filter((e) => e.type === 'timer.cancel').map((e) => e.name);

// run applies actions in order and returns the last result; effects of every step are kept.
function run(state, ...actions) {
  let r = { state, effects: [] };
  const all = [];
  for (const a of actions) {
    r = reduce(r.state, a);
    all.push(...r.effects);
  }
  return { ...r, all };
}

const joinData = (extra = {}) => ({
  iceServers: [{ urls: ['turn:127.0.0.1:3478'], username: '1:u', credential: 'p' }],
  iceTransportPolicy: 'all',
  participantId: 'p1',
  role: 'first',
  resumeToken: 'tok-1',
  resumeGraceMs: 20000,
  credentialTtl: 3600,
  ...extra,
});
const msg = (m) => ({ type: 'SOCKET_MESSAGE', msg: m });

// Ready-made states along the happy path.
const atPin = (pin = '123456') => reduce(initialState(), { type: 'PIN_CHANGED', value: pin }).state;
const atMedia = () => reduce(atPin(), { type: 'SUBMIT' }).state;
const atConnecting = (media = { audio: true, video: true, cameras: 1 }) => reduce(atMedia(), { type: 'MEDIA_READY', ...media }).state;
const atJoinSent = () => reduce(atConnecting(), { type: 'SOCKET_OPEN' }).state;
const atWaiting = (extra) => reduce(atJoinSent(), msg({ type: 'join-pin', data: joinData(extra) })).state;
const atSecond = () => reduce(atJoinSent(), msg({ type: 'join-pin', data: joinData({ role: 'second' }) })).state;
const atNegotiatingOfferer = () => reduce(atWaiting(), msg({ type: 'peer-joined' })).state;
const atCall = () => reduce(atNegotiatingOfferer(), { type: 'ICE_STATE', state: 'connected' }).state;
const atCallAnswerer = () => run(atSecond(), msg({ type: 'offer', data: { type: 'offer', sdp: 'v=0' } }), { type: 'ICE_STATE', state: 'connected' }).state;

describe('PIN entry', () => {
  test('starts on PIN entry with nothing running', () => {
    const s = initialState();
    assert.equal(s.phase, Phase.PIN);
    assert.equal(s.pin, '');
    assert.equal(s.socket, 'closed');
  });

  test('typing and pasting keep digits only, up to 6', () => {
    assert.equal(reduce(initialState(), { type: 'PIN_CHANGED', value: ' 123-456 789' }).state.pin, '123456');
    assert.equal(reduce(initialState(), { type: 'PIN_CHANGED', value: '１２３４５６' }).state.pin, '123456');
  });

  test('a bad PIN shows an inline error and does not connect', () => {
    const r = run(initialState(), { type: 'PIN_CHANGED', value: '12a' }, { type: 'SUBMIT' });
    assert.equal(r.state.phase, Phase.PIN);
    assert.equal(r.state.pinError.code, 'PIN_TOO_SHORT');
    assert.deepEqual(r.all, []);
  });

  test('an empty PIN says what to enter', () => {
    const r = reduce(initialState(), { type: 'SUBMIT' });
    assert.equal(r.state.pinError.code, 'PIN_EMPTY');
  });

  test('editing clears the error, re-sending the same value does not', () => {
    const bad = run(initialState(), { type: 'PIN_CHANGED', value: '12' }, { type: 'SUBMIT' }).state;
    assert.ok(bad.pinError);
    assert.ok(reduce(bad, { type: 'PIN_CHANGED', value: '12' }).state.pinError);
    assert.equal(reduce(bad, { type: 'PIN_CHANGED', value: '123' }).state.pinError, null);
  });

  test('a valid PIN asks for media first, before any socket', () => {
    const r = reduce(atPin(), { type: 'SUBMIT' });
    assert.equal(r.state.phase, Phase.MEDIA);
    assert.deepEqual(types(r.effects), ['media.acquire']);
  });

  test('PIN changes and submits are ignored outside PIN entry', () => {
    const s = atWaiting();
    assert.equal(reduce(s, { type: 'PIN_CHANGED', value: '999999' }).state, s);
    assert.equal(reduce(s, { type: 'SUBMIT' }).state, s);
  });
});

describe('acquiring media', () => {
  test('camera and microphone ready: connect, with a join timeout', () => {
    const r = reduce(atMedia(), { type: 'MEDIA_READY', audio: true, video: true, cameras: 2 });
    assert.equal(r.state.phase, Phase.CONNECTING);
    assert.equal(r.state.socket, 'connecting');
    assert.deepEqual(r.state.media, { audio: true, video: true, cameras: 2, muted: false, cameraOff: false });
    assert.equal(r.state.notice, null);
    assert.deepEqual(types(r.effects), ['socket.open', 'timer.start']);
    assert.equal(find(r.effects, 'timer.start').ms, Timing.CONNECT_TIMEOUT_MS);
  });

  test('no camera: audio only with a notice that says why', () => {
    const r = reduce(atMedia(), { type: 'MEDIA_READY', audio: true, video: false, cameras: 0, videoProblem: 'MEDIA_NOT_FOUND' });
    assert.equal(r.state.phase, Phase.CONNECTING);
    assert.equal(r.state.notice.code, 'audio-only');
    assert.match(r.state.notice.text, /No camera found/);
    const busy = reduce(atMedia(), { type: 'MEDIA_READY', audio: true, video: false, videoProblem: 'MEDIA_IN_USE' });
    assert.match(busy.state.notice.text, /in use/);
  });

  test('each media failure has its own actionable error', () => {
    for (const [name, code] of [
      ['NotAllowedError', 'MEDIA_DENIED'],
      ['NotFoundError', 'MEDIA_NOT_FOUND'],
      ['NotReadableError', 'MEDIA_IN_USE'],
      ['OverconstrainedError', 'MEDIA_CONSTRAINTS'],
      ['InsecureContext', 'MEDIA_INSECURE'],
      ['Weird', 'MEDIA_FAILED'],
    ]) {
      const r = reduce(atMedia(), { type: 'MEDIA_FAILED', name });
      assert.equal(r.state.phase, Phase.ERROR, name);
      assert.equal(r.state.problem.code, code, name);
      assert.ok(types(r.effects).includes('media.stop'));
      assert.ok(!sent(r.effects).length, 'nothing is sent: we never joined');
    }
  });

  test('a media result after cancel is stopped, not used', () => {
    const cancelled = reduce(atMedia(), { type: 'CANCEL' }).state;
    assert.equal(cancelled.phase, Phase.PIN);
    const r = reduce(cancelled, { type: 'MEDIA_READY', audio: true, video: true });
    assert.equal(r.state.phase, Phase.PIN);
    assert.deepEqual(types(r.effects), ['media.stop']);
    assert.equal(reduce(cancelled, { type: 'MEDIA_FAILED', name: 'NotAllowedError' }).state.phase, Phase.PIN);
  });
});

describe('connecting', () => {
  test('socket open sends join-pin once', () => {
    const r = reduce(atConnecting(), { type: 'SOCKET_OPEN' });
    assert.deepEqual(sent(r.effects), [{ type: 'join-pin', pin: '123456' }]);
    assert.equal(r.state.socket, 'open');
    assert.deepEqual(reduce(r.state, { type: 'SOCKET_OPEN' }).effects, []);
  });

  test('first member waits with the PIN shown; the peer connection is prepared', () => {
    const r = reduce(atJoinSent(), msg({ type: 'join-pin', data: joinData() }));
    assert.equal(r.state.phase, Phase.WAITING);
    assert.equal(r.state.offerer, false);
    assert.equal(r.state.session.resumeToken, 'tok-1');
    assert.deepEqual(timersCancelled(r.effects), ['connect']);
    assert.equal(find(r.effects, 'pc.create').session.iceTransportPolicy, 'all');
  });

  test('second member goes straight to negotiating and waits for the offer', () => {
    const r = reduce(atJoinSent(), msg({ type: 'join-pin', data: joinData({ role: 'second' }) }));
    assert.equal(r.state.phase, Phase.NEGOTIATING);
    assert.equal(r.state.peer, true);
    assert.equal(r.state.offerer, false);
    assert.ok(!types(r.effects).includes('pc.offer'));
    assert.deepEqual(timersStarted(r.effects), ['cred-refresh', 'negotiate']);
  });

  test('iceTransportPolicy relay from the server is honoured', () => {
    const r = reduce(atJoinSent(), msg({ type: 'join-pin', data: joinData({ iceTransportPolicy: 'relay' }) }));
    assert.equal(find(r.effects, 'pc.create').session.iceTransportPolicy, 'relay');
  });

  test('invalid PIN and room full from the server return to PIN entry with the reason', () => {
    for (const [code, error] of [['INVALID_PIN', 'Invalid PIN format: 12a. Must be 6 digits'], ['ROOM_FULL', 'Room 123456 is full (maximum 2 clients)']]) {
      const r = reduce(atJoinSent(), msg({ type: 'error', code, error }));
      assert.equal(r.state.phase, Phase.PIN, code);
      assert.equal(r.state.pinError.code, code);
      assert.equal(r.state.pin, '123456', 'the PIN is kept for editing');
      assert.ok(types(r.effects).includes('socket.close'));
      assert.ok(types(r.effects).includes('media.stop'));
      assert.ok(!sent(r.effects).some((m) => m.type === 'leave'), 'no leave: we never joined');
    }
    assert.match(reduce(atJoinSent(), msg({ type: 'error', code: 'ROOM_FULL' })).state.pinError.text, /Two people are already in the call with PIN 123456/);
  });

  test('other server errors while joining end on the error screen', () => {
    const r = reduce(atJoinSent(), msg({ type: 'error', code: 'JOIN_RATE_LIMITED', error: 'Too many joins', retryAfterMs: 30000 }));
    assert.equal(r.state.phase, Phase.ERROR);
    assert.equal(r.state.problem.code, 'JOIN_RATE_LIMITED');
    assert.match(r.state.problem.text, /Wait 30 seconds/);
    assert.equal(reduce(atJoinSent(), msg({ type: 'error', code: 'SERVICE_UNAVAILABLE' })).state.problem.action, 'retry');
    // The socket cap's refusal comes right after the socket opens, before any join answer.
    assert.equal(reduce(atJoinSent(), msg({ type: 'error', code: 'TOO_MANY_SOCKETS', error: 'Too many open connections', retryAfterMs: 30000 })).state.problem.title, 'Too many connections');
  });

  test('a close before the join answer is explained by its code', () => {
    assert.equal(reduce(atJoinSent(), { type: 'SOCKET_CLOSED', code: 1013 }).state.problem.code, 'CLOSE_TRY_LATER');
    assert.equal(reduce(atConnecting(), { type: 'SOCKET_CLOSED', code: 1006 }).state.problem.code, 'CLOSE_NETWORK');
    assert.equal(reduce(atJoinSent(), { type: 'SOCKET_CLOSED', code: 1008 }).state.problem.code, 'CLOSE_POLICY');
  });

  test('no answer in time: error with a retry', () => {
    const r = reduce(atJoinSent(), { type: 'TIMER', name: 'connect' });
    assert.equal(r.state.phase, Phase.ERROR);
    assert.equal(r.state.problem.code, 'CONNECT_TIMEOUT');
    assert.equal(r.state.problem.action, 'retry');
    assert.equal(reduce(atWaiting(), { type: 'TIMER', name: 'connect' }).state.phase, Phase.WAITING, 'stale timer ignored');
  });

  test('cancel while connecting leaves and tears down', () => {
    const r = reduce(atJoinSent(), { type: 'CANCEL' });
    assert.equal(r.state.phase, Phase.PIN);
    assert.deepEqual(types(r.effects), ['timer.cancelAll', 'stats.stop', 'socket.send', 'socket.close', 'pc.close', 'media.stop']);
    assert.deepEqual(sent(r.effects), [{ type: 'leave' }]);
  });

  test('a join answer outside connecting is ignored', () => {
    const s = atWaiting();
    assert.equal(reduce(s, msg({ type: 'join-pin', data: joinData() })).state, s);
  });
});

describe('waiting and negotiating', () => {
  test('peer joined: the first member makes the offer', () => {
    const r = reduce(atWaiting(), msg({ type: 'peer-joined' }));
    assert.equal(r.state.phase, Phase.NEGOTIATING);
    assert.equal(r.state.offerer, true);
    assert.deepEqual(types(r.effects), ['pc.offer', 'timer.start']);
  });

  test('peer joined is ignored unless waiting', () => {
    const s = atCall();
    assert.deepEqual(reduce(s, msg({ type: 'peer-joined' })).effects, []);
  });

  test('an offer while waiting (server without roles) answers it', () => {
    const r = reduce(atWaiting({ role: undefined }), msg({ type: 'offer', data: { type: 'offer', sdp: 'x' } }));
    assert.equal(r.state.phase, Phase.NEGOTIATING);
    assert.equal(r.state.offerer, false);
    assert.deepEqual(find(r.effects, 'pc.answer').description, { type: 'offer', sdp: 'x' });
  });

  test('the answerer answers offers, also ICE-restart offers in a call', () => {
    assert.ok(find(reduce(atSecond(), msg({ type: 'offer', data: { type: 'offer', sdp: 'x' } })).effects, 'pc.answer'));
    const inCall = reduce(atCallAnswerer(), msg({ type: 'offer', data: { type: 'offer', sdp: 'y' } }));
    assert.equal(inCall.state.phase, Phase.CALL);
    assert.deepEqual(types(inCall.effects), ['pc.answer']);
  });

  test('an offer without data is ignored', () => {
    assert.deepEqual(reduce(atSecond(), msg({ type: 'offer' })).effects, []);
  });

  test('answers are applied only by the offerer', () => {
    const a = { type: 'answer', data: { type: 'answer', sdp: 'z' } };
    assert.deepEqual(types(reduce(atNegotiatingOfferer(), msg(a)).effects), ['pc.remote']);
    assert.deepEqual(reduce(atSecond(), msg(a)).effects, []);
    assert.deepEqual(reduce(atWaiting(), msg(a)).effects, []);
  });

  test('remote candidates are passed on in the room, dropped elsewhere', () => {
    const c = { type: 'ice-candidate', data: { candidate: 'candidate:1 1 udp 1 127.0.0.1 5000 typ host', sdpMid: '0' } };
    assert.deepEqual(find(reduce(atSecond(), msg(c)).effects, 'pc.candidate').candidate, c.data);
    assert.deepEqual(reduce(atPin(), msg(c)).effects, []);
    assert.deepEqual(reduce(atSecond(), msg({ type: 'ice-candidate' })).effects, []);
  });

  test('local descriptions and candidates are sent only with a peer', () => {
    const d = { type: 'offer', sdp: 'v=0' };
    assert.deepEqual(sent(reduce(atNegotiatingOfferer(), { type: 'LOCAL_DESCRIPTION', description: d }).effects), [{ type: 'offer', data: d }]);
    const c = { candidate: 'candidate:x', sdpMid: '0', sdpMLineIndex: 0 };
    assert.deepEqual(sent(reduce(atCall(), { type: 'LOCAL_CANDIDATE', candidate: c }).effects), [{ type: 'ice-candidate', data: c }]);
    assert.deepEqual(reduce(atWaiting(), { type: 'LOCAL_CANDIDATE', candidate: c }).effects, []);
    assert.deepEqual(reduce(atCall(), { type: 'LOCAL_CANDIDATE', candidate: null }).effects, []);
    assert.deepEqual(reduce(atPin(), { type: 'LOCAL_DESCRIPTION', description: d }).effects, []);
  });

  test('ICE connected: in call, timers cancelled, stats start', () => {
    const r = reduce(atNegotiatingOfferer(), { type: 'ICE_STATE', state: 'connected' });
    assert.equal(r.state.phase, Phase.CALL);
    assert.ok(types(r.effects).includes('stats.start'));
    assert.ok(timersCancelled(r.effects).includes('negotiate'));
    assert.equal(reduce(atNegotiatingOfferer(), { type: 'ICE_STATE', state: 'completed' }).state.phase, Phase.CALL);
  });

  test('ICE checking changes nothing but the recorded state', () => {
    const r = reduce(atNegotiatingOfferer(), { type: 'ICE_STATE', state: 'checking' });
    assert.equal(r.state.phase, Phase.NEGOTIATING);
    assert.equal(r.state.iceState, 'checking');
    assert.deepEqual(r.effects, []);
  });

  test('negotiation that never connects: clear error, leave', () => {
    const r = reduce(atNegotiatingOfferer(), { type: 'TIMER', name: 'negotiate' });
    assert.equal(r.state.phase, Phase.ERROR);
    assert.equal(r.state.problem.code, 'NEGOTIATION_TIMEOUT');
    assert.deepEqual(sent(r.effects), [{ type: 'leave' }]);
    assert.equal(reduce(atCall(), { type: 'TIMER', name: 'negotiate' }).state.phase, Phase.CALL, 'stale timer ignored');
  });

  test('a peer connection failure ends with an error, outside the room it is ignored', () => {
    assert.equal(reduce(atNegotiatingOfferer(), { type: 'PC_ERROR' }).state.problem.code, 'PEER_SETUP');
    assert.equal(reduce(atPin(), { type: 'PC_ERROR' }).state.phase, Phase.PIN);
  });

  test('cancel while waiting leaves the room', () => {
    const r = reduce(atWaiting(), { type: 'CANCEL' });
    assert.equal(r.state.phase, Phase.PIN);
    assert.deepEqual(sent(r.effects), [{ type: 'leave' }]);
    assert.equal(reduce(atCall(), { type: 'CANCEL' }).state.phase, Phase.CALL, 'cancel is not hang up');
  });
});

describe('in a call', () => {
  test('peer left: back to waiting in the same room, with a notice and a fresh peer connection', () => {
    const r = reduce(atCall(), msg({ type: 'peer-left' }));
    assert.equal(r.state.phase, Phase.WAITING);
    assert.equal(r.state.notice.code, 'peer-left');
    assert.equal(r.state.peer, false);
    assert.equal(r.state.path, null);
    assert.ok(types(r.effects).includes('pc.create'));
    assert.ok(types(r.effects).includes('stats.stop'));
    assert.ok(!types(r.effects).includes('socket.close'), 'the membership stays');
    // Whoever comes next gets our offer.
    const again = reduce(r.state, msg({ type: 'peer-joined' }));
    assert.equal(again.state.phase, Phase.NEGOTIATING);
    assert.equal(again.state.notice, null);
  });

  test('peer left outside a room is ignored', () => {
    assert.deepEqual(reduce(atPin(), msg({ type: 'peer-left' })).effects, []);
  });

  test('hang up: leave, close everything, ended', () => {
    const r = reduce(atCall(), { type: 'HANG_UP' });
    assert.equal(r.state.phase, Phase.ENDED);
    assert.equal(r.state.problem.code, 'HUNG_UP');
    assert.deepEqual(types(r.effects), ['timer.cancelAll', 'stats.stop', 'socket.send', 'socket.close', 'pc.close', 'media.stop']);
    assert.deepEqual(sent(r.effects), [{ type: 'leave' }]);
    assert.equal(reduce(atPin(), { type: 'HANG_UP' }).state.phase, Phase.PIN);
  });

  test('closing the page leaves at once', () => {
    assert.deepEqual(sent(reduce(atCall(), { type: 'PAGE_HIDE' }).effects), [{ type: 'leave' }]);
    assert.deepEqual(reduce(atPin(), { type: 'PAGE_HIDE' }).effects, []);
  });

  test('mute and camera toggle the tracks', () => {
    const m = reduce(atCall(), { type: 'TOGGLE_MUTE' });
    assert.equal(m.state.media.muted, true);
    assert.deepEqual(m.effects, [{ type: 'media.setAudio', enabled: false }]);
    assert.deepEqual(reduce(m.state, { type: 'TOGGLE_MUTE' }).effects, [{ type: 'media.setAudio', enabled: true }]);
    const c = reduce(atCall(), { type: 'TOGGLE_CAMERA' });
    assert.equal(c.state.media.cameraOff, true);
    assert.deepEqual(c.effects, [{ type: 'media.setVideo', enabled: false }]);
  });

  test('camera toggle needs a camera, mute needs a microphone', () => {
    const audioOnly = atConnecting({ audio: true, video: false, cameras: 0 });
    assert.deepEqual(reduce(audioOnly, { type: 'TOGGLE_CAMERA' }).effects, []);
    const noMic = atConnecting({ audio: false, video: true, cameras: 1 });
    assert.deepEqual(reduce(noMic, { type: 'TOGGLE_MUTE' }).effects, []);
  });

  test('flip camera only with two cameras and the camera on', () => {
    assert.deepEqual(reduce(atCall(), { type: 'FLIP_CAMERA' }).effects, [], 'one camera');
    const two = reduce(atCall(), { type: 'CAMERAS', count: 2 }).state;
    assert.deepEqual(reduce(two, { type: 'FLIP_CAMERA' }).effects, [{ type: 'media.flip' }]);
    const off = reduce(two, { type: 'TOGGLE_CAMERA' }).state;
    assert.deepEqual(reduce(off, { type: 'FLIP_CAMERA' }).effects, []);
  });

  test('self-view can be hidden and shown', () => {
    const h = reduce(atCall(), { type: 'TOGGLE_SELF_VIEW' }).state;
    assert.equal(h.selfViewHidden, true);
    assert.equal(reduce(h, { type: 'TOGGLE_SELF_VIEW' }).state.selfViewHidden, false);
  });

  test('stats set the path and a smoothed quality, only in a call', () => {
    const sample = { path: 'relay', rttMs: 40, kbps: 900, lossPct: 0 };
    const r = reduce(atCall(), { type: 'STATS', sample });
    assert.equal(r.state.path, 'relay');
    assert.equal(r.state.quality.level, 'good');
    assert.equal(reduce(atWaiting(), { type: 'STATS', sample }).state.path, null);
    assert.equal(reduce(r.state, { type: 'STATS', sample: { ...sample, path: null } }).state.path, 'relay', 'a missing pair keeps the last path');
  });
});

describe('safety code', () => {
  const words = ['acorn', 'tiger', 'pearl', 'zoo', 'lake', 'drum'];

  test('kept from negotiating on, through ICE recovery', () => {
    const n = reduce(atNegotiatingOfferer(), { type: 'SAFETY_CODE', words });
    assert.deepEqual(n.state.safety, words);
    assert.deepEqual(n.effects, []);
    const c = reduce(n.state, { type: 'ICE_STATE', state: 'connected' }).state;
    assert.deepEqual(c.safety, words, 'connecting keeps the code');
    assert.deepEqual(reduce(atCallAnswerer(), { type: 'SAFETY_CODE', words }).state.safety, words);
    const r = reduce(reduce(c, { type: 'ICE_STATE', state: 'failed' }).state, { type: 'SAFETY_CODE', words: ['bee'] });
    assert.equal(r.state.phase, Phase.RECONNECTING);
    assert.deepEqual(r.state.safety, ['bee'], 'a renegotiation replaces it');
  });

  test('no words means no code', () => {
    const s = reduce(atCall(), { type: 'SAFETY_CODE', words }).state;
    assert.equal(reduce(s, { type: 'SAFETY_CODE', words: null }).state.safety, null);
    assert.equal(reduce(s, { type: 'SAFETY_CODE', words: [] }).state.safety, null);
    assert.equal(reduce(s, { type: 'SAFETY_CODE' }).state.safety, null);
  });

  test('ignored without a peer', () => {
    for (const s of [atPin(), atMedia(), atJoinSent(), atWaiting()]) {
      assert.equal(reduce(s, { type: 'SAFETY_CODE', words }).state.safety, null, s.phase);
    }
  });

  test('dropped when the other person leaves or the call ends', () => {
    const s = reduce(atCall(), { type: 'SAFETY_CODE', words }).state;
    assert.equal(reduce(s, msg({ type: 'peer-left' })).state.safety, null);
    assert.equal(reduce(s, { type: 'HANG_UP' }).state.safety, null);
    assert.equal(reduce(s, { type: 'PC_ERROR' }).state.safety, null);
  });
});

// renewed is the answer to a renewal's resume: new credentials, a new token.
const renewed = (n = 2) => msg({ type: 'resumed', data: joinData({ resumeToken: `tok-${n}`, iceServers: [{ urls: ['turn:127.0.0.1:3478'], username: `${n}:u`, credential: `p${n}` }] }) });

describe('ICE recovery', () => {
  test('disconnected: wait a grace period before restarting', () => {
    const r = reduce(atCall(), { type: 'ICE_STATE', state: 'disconnected' });
    assert.equal(r.state.phase, Phase.CALL);
    assert.deepEqual(r.effects, [{ type: 'timer.start', name: 'ice-grace', ms: Timing.ICE_GRACE_MS }]);
    const healed = reduce(r.state, { type: 'ICE_STATE', state: 'connected' });
    assert.equal(healed.state.phase, Phase.CALL);
    assert.deepEqual(timersCancelled(healed.effects), ['ice-grace']);
    assert.equal(reduce(healed.state, { type: 'TIMER', name: 'ice-grace' }).state.phase, Phase.CALL, 'grace timer after healing is ignored');
  });

  test('disconnected past the grace period: the offerer renews its credentials, then restarts ICE', () => {
    const r = run(atCall(), { type: 'ICE_STATE', state: 'disconnected' }, { type: 'TIMER', name: 'ice-grace' });
    assert.equal(r.state.phase, Phase.RECONNECTING);
    assert.equal(r.state.notice.code, 'ice-reconnecting');
    assert.deepEqual(find(r.effects, 'socket.refresh'), { type: 'socket.refresh', token: 'tok-1' });
    assert.ok(!types(r.effects).includes('pc.restartIce'), 'not with the old credentials');
    assert.ok(timersStarted(r.effects).includes('ice-restart'));
    const done = reduce(r.state, renewed());
    assert.deepEqual(types(done.effects).filter((t) => t.startsWith('pc.')), ['pc.configure', 'pc.restartIce'], 'fresh credentials applied before the restart offer');
    assert.equal(find(done.effects, 'pc.configure').session.iceServers[0].username, '2:u');
  });

  test('failed: renew, restart; reconnected returns to the call', () => {
    const r = reduce(atCall(), { type: 'ICE_STATE', state: 'failed' });
    assert.equal(r.state.phase, Phase.RECONNECTING);
    assert.equal(r.state.refreshing, 'ice');
    assert.equal(r.state.restartPending, true);
    assert.equal(r.state.socket, 'open', 'the socket stays open during a renewal');
    const restarted = reduce(r.state, renewed());
    assert.ok(types(restarted.effects).includes('pc.restartIce'));
    assert.equal(restarted.state.restartPending, false);
    assert.equal(restarted.state.refreshing, null);
    assert.equal(restarted.state.session.resumeToken, 'tok-2');
    assert.equal(restarted.state.notice.code, 'ice-reconnecting', 'the banner stays until ICE is back');
    const back = reduce(restarted.state, { type: 'ICE_STATE', state: 'connected' });
    assert.equal(back.state.phase, Phase.CALL);
    assert.equal(back.state.iceRestarts, 0);
    assert.equal(back.state.notice, null);
    assert.ok(timersCancelled(back.effects).includes('ice-restart'));
  });

  test('a renewal that fails: restart with the credentials on hand, try renewing again later', () => {
    const s = reduce(atCall(), { type: 'ICE_STATE', state: 'failed' }).state;
    const r = reduce(s, { type: 'REFRESH_FAILED', reason: 'timeout' });
    assert.deepEqual(types(r.effects), ['socket.flush', 'timer.start', 'pc.restartIce']);
    assert.deepEqual(timersStarted(r.effects), ['cred-refresh']);
    assert.equal(find(r.effects, 'timer.start').ms, Timing.CRED_REFRESH_RETRY_MS);
    assert.equal(r.state.refreshing, null);
    assert.equal(r.state.phase, Phase.RECONNECTING);
    assert.deepEqual(reduce(r.state, { type: 'REFRESH_FAILED' }).effects, [], 'a failure without a renewal is ignored');
  });

  test('a few tries, each with a renewal, then a clear message', () => {
    let s = reduce(atCall(), { type: 'ICE_STATE', state: 'failed' }).state;
    for (let i = 2; i <= Timing.MAX_ICE_RESTARTS; i++) {
      s = reduce(s, renewed(i)).state;
      const r = reduce(s, { type: 'TIMER', name: 'ice-restart' });
      assert.equal(r.state.phase, Phase.RECONNECTING);
      assert.equal(r.state.iceRestarts, i);
      assert.deepEqual(find(r.effects, 'socket.refresh'), { type: 'socket.refresh', token: `tok-${i}` }, 'renewed with the latest token');
      assert.ok(types(reduce(r.state, renewed(i + 1)).effects).includes('pc.restartIce'));
      s = r.state;
    }
    const r = reduce(s, { type: 'TIMER', name: 'ice-restart' });
    assert.equal(r.state.phase, Phase.ERROR);
    assert.equal(r.state.problem.code, 'ICE_FAILED');
    assert.deepEqual(sent(r.effects), [{ type: 'leave' }]);
    assert.equal(r.state.refreshing, null);
    assert.ok(types(r.effects).includes('socket.close'), 'a renewal under way ends with the sockets');
  });

  test('a try while the renewal is still under way starts no second one', () => {
    const s = reduce(atCall(), { type: 'ICE_STATE', state: 'failed' }).state;
    const r = reduce(s, { type: 'TIMER', name: 'ice-restart' });
    assert.equal(r.state.iceRestarts, 2);
    assert.ok(!types(r.effects).includes('socket.refresh'));
    assert.equal(r.state.restartPending, true);
  });

  test('the answerer does not restart ICE itself; it renews its credentials and waits for the offerer', () => {
    const r = reduce(atCallAnswerer(), { type: 'ICE_STATE', state: 'failed' });
    assert.equal(r.state.phase, Phase.RECONNECTING);
    assert.ok(!types(r.effects).includes('pc.restartIce'));
    assert.ok(types(r.effects).includes('socket.refresh'));
    assert.ok(timersStarted(r.effects).includes('ice-restart'));
    assert.equal(r.state.restartPending, false);
    const done = reduce(r.state, renewed());
    assert.deepEqual(types(done.effects).filter((t) => t.startsWith('pc.')), ['pc.configure']);
  });

  test('the answerer answers a restart offer that arrives during its renewal with the fresh credentials', () => {
    const s = reduce(atCallAnswerer(), { type: 'ICE_STATE', state: 'failed' }).state;
    const offer = { type: 'offer', data: { type: 'offer', sdp: 'restart' } };
    const c1 = { type: 'ice-candidate', data: { candidate: 'candidate:1 1 udp 1 127.0.0.1 5000 typ relay' } };
    const held = run(s, msg(offer), msg(c1));
    assert.deepEqual(held.all, [], 'held, not answered with the old credentials');
    assert.equal(held.state.held.length, 2);
    const r = reduce(held.state, renewed());
    assert.deepEqual(types(r.effects).filter((t) => t.startsWith('pc.')), ['pc.configure', 'pc.answer', 'pc.candidate'], 'configure, then the offer and its candidates in order');
    assert.deepEqual(find(r.effects, 'pc.answer').description, offer.data);
    assert.deepEqual(r.state.held, []);
    assert.deepEqual(types(reduce(r.state, msg(c1)).effects), ['pc.candidate'], 'after the renewal candidates pass at once');
  });

  test('a restart offer while the answerer\'s own path is down: it reconnects and renews before answering', () => {
    const s = reduce(atCallAnswerer(), { type: 'ICE_STATE', state: 'disconnected' }).state;
    const offer = { type: 'offer', data: { type: 'offer', sdp: 'restart' } };
    const r = reduce(s, msg(offer));
    assert.equal(r.state.phase, Phase.RECONNECTING);
    assert.deepEqual(types(r.effects).filter((t) => !t.startsWith('timer.')), ['socket.refresh']);
    assert.deepEqual(r.state.held, [offer]);
    const done = reduce(r.state, renewed());
    assert.deepEqual(types(done.effects).filter((t) => t.startsWith('pc.')), ['pc.configure', 'pc.answer']);
    const down = reduce(s, { type: 'SOCKET_CLOSED', code: 1006 }).state;
    assert.ok(types(reduce(down, msg(offer)).effects).includes('pc.answer'), 'no renewal possible: answered at once');
  });

  test('held messages keep their order and are also released when the renewal fails', () => {
    const s = reduce(atCallAnswerer(), { type: 'ICE_STATE', state: 'failed' }).state;
    const r = run(s, msg({ type: 'offer', data: { type: 'offer', sdp: 'o' } }), msg({ type: 'peer-left' }), { type: 'REFRESH_FAILED' });
    assert.equal(r.state.phase, Phase.WAITING, 'the peer left after its offer');
    assert.deepEqual(types(r.effects).filter((t) => t.startsWith('pc.')), ['pc.answer', 'pc.create']);
  });

  test('errors are not held; the hold is bounded', () => {
    const s = reduce(atCallAnswerer(), { type: 'ICE_STATE', state: 'failed' }).state;
    assert.equal(reduce(s, msg({ type: 'error', code: 'ROOM_CLOSED', error: 'x' })).state.phase, Phase.ENDED);
    let h = s;
    for (let i = 0; i < Timing.MAX_HELD + 10; i++) h = reduce(h, msg({ type: 'ice-candidate', data: { candidate: String(i) } })).state;
    assert.equal(h.held.length, Timing.MAX_HELD);
    assert.equal(h.held[0].data.candidate, '10', 'the oldest are dropped first');
  });

  test('the socket drops during a renewal: the resume brings the credentials, then the restart', () => {
    const s = reduce(atCall(), { type: 'ICE_STATE', state: 'failed' }).state;
    const held = reduce(s, msg({ type: 'answer', data: { type: 'answer', sdp: 'a' } })).state;
    const dropped = reduce(held, { type: 'SOCKET_CLOSED', code: 1012 });
    assert.equal(dropped.state.socket, 'resuming');
    assert.equal(dropped.state.refreshing, null);
    assert.ok(!types(dropped.effects).includes('pc.restartIce'));
    const r = reduce(dropped.state, renewed());
    assert.deepEqual(types(r.effects).filter((t) => t.startsWith('pc.')), ['pc.configure', 'pc.remote', 'pc.restartIce']);
  });

  test('socket down when ICE fails: the offerer restarts once the resume is back', () => {
    const down = reduce(atCall(), { type: 'SOCKET_CLOSED', code: 1006 }).state;
    const r = reduce(down, { type: 'ICE_STATE', state: 'failed' });
    assert.ok(!types(r.effects).includes('pc.restartIce'));
    assert.ok(!types(r.effects).includes('socket.refresh'), 'the resume renews them');
    assert.equal(r.state.restartPending, true);
    const back = reduce(r.state, renewed());
    assert.deepEqual(types(back.effects).filter((t) => t.startsWith('pc.')), ['pc.configure', 'pc.restartIce']);
  });

  test('without a resume token the offerer restarts at once with what it has', () => {
    const s = reduce(reduce(atWaiting({ resumeToken: '' }), msg({ type: 'peer-joined' })).state, { type: 'ICE_STATE', state: 'connected' }).state;
    const r = reduce(s, { type: 'ICE_STATE', state: 'failed' });
    assert.ok(types(r.effects).includes('pc.restartIce'));
    assert.ok(!types(r.effects).includes('socket.refresh'));
  });

  test('the other person leaves before the renewal is over: no restart on the new connection', () => {
    const s = reduce(atCall(), { type: 'ICE_STATE', state: 'failed' }).state;
    const r = run(s, msg({ type: 'peer-left' }), renewed());
    assert.equal(r.state.phase, Phase.WAITING);
    assert.equal(r.state.restartPending, false);
    assert.ok(!types(r.all).includes('pc.restartIce'));
  });

  test('failed while already reconnecting waits for the running try', () => {
    const s = reduce(atCall(), { type: 'ICE_STATE', state: 'failed' }).state;
    assert.deepEqual(reduce(s, { type: 'ICE_STATE', state: 'failed' }).effects, []);
  });

  test('stale restart timers are ignored', () => {
    assert.equal(reduce(atCall(), { type: 'TIMER', name: 'ice-restart' }).state.phase, Phase.CALL);
  });

  test('online event: the offerer renews and restarts ICE, the answerer does not', () => {
    const r = reduce(atCall(), { type: 'ONLINE' });
    assert.equal(r.state.phase, Phase.RECONNECTING);
    assert.equal(r.state.iceRestarts, 1);
    assert.ok(types(r.effects).includes('socket.refresh'));
    assert.ok(types(reduce(r.state, renewed()).effects).includes('pc.restartIce'));
    assert.deepEqual(reduce(atCallAnswerer(), { type: 'ONLINE' }).effects, []);
    assert.deepEqual(reduce(atPin(), { type: 'ONLINE' }).effects, []);
  });
});

describe('credential lifetime', () => {
  test('join and resume arm the renewal at 90 % of the TTL', () => {
    const w = reduce(atJoinSent(), msg({ type: 'join-pin', data: joinData({ credentialTtl: 3600 }) }));
    assert.deepEqual(find(w.effects, 'timer.start'), { type: 'timer.start', name: 'cred-refresh', ms: 3240000 });
    const down = reduce(w.state, { type: 'SOCKET_CLOSED', code: 1006 }).state;
    const r = reduce(down, msg({ type: 'resumed', data: joinData({ credentialTtl: 7200 }) }));
    assert.equal(r.effects.find((e) => e.name === 'cred-refresh').ms, 6480000);
  });

  test('tiny, huge or missing TTLs', () => {
    const armed = (ttl) => reduce(atJoinSent(), msg({ type: 'join-pin', data: joinData({ credentialTtl: ttl }) })).effects.find((e) => e.name === 'cred-refresh');
    assert.equal(armed(1).ms, Timing.CRED_REFRESH_MIN_MS, 'never a resume loop');
    assert.equal(armed(86400 * 365).ms, Timing.CRED_REFRESH_MAX_MS, 'within what setTimeout holds');
    assert.equal(armed(null).type, 'timer.cancel');
    assert.equal(armed('soon').type, 'timer.cancel');
  });

  test('the timer renews without restarting anything', () => {
    const r = reduce(atCall(), { type: 'TIMER', name: 'cred-refresh' });
    assert.deepEqual(r.effects, [{ type: 'socket.refresh', token: 'tok-1' }]);
    assert.equal(r.state.refreshing, 'ttl');
    assert.equal(r.state.phase, Phase.CALL);
    const done = reduce(r.state, renewed());
    assert.deepEqual(types(done.effects), ['timer.cancel', 'timer.cancel', 'socket.flush', 'pc.configure', 'timer.start']);
    assert.equal(done.state.refreshing, null);
    assert.equal(done.state.phase, Phase.CALL);
  });

  test('also while waiting; a peer that joins meanwhile gets the offer after it', () => {
    const r = run(atWaiting(), { type: 'TIMER', name: 'cred-refresh' }, msg({ type: 'peer-joined' }));
    assert.equal(r.state.phase, Phase.WAITING);
    const done = reduce(r.state, renewed());
    assert.equal(done.state.phase, Phase.NEGOTIATING);
    assert.deepEqual(types(done.effects).filter((t) => t.startsWith('pc.')), ['pc.configure', 'pc.offer']);
  });

  test('an ICE failure during a TTL renewal waits for it', () => {
    const s = reduce(atCall(), { type: 'TIMER', name: 'cred-refresh' }).state;
    const r = reduce(s, { type: 'ICE_STATE', state: 'failed' });
    assert.ok(!types(r.effects).includes('socket.refresh'));
    assert.equal(r.state.restartPending, true);
    assert.ok(types(reduce(r.state, renewed()).effects).includes('pc.restartIce'));
  });

  test('ignored outside a room, with the socket down, or during a renewal', () => {
    assert.deepEqual(reduce(atPin(), { type: 'TIMER', name: 'cred-refresh' }).effects, []);
    assert.deepEqual(reduce(atJoinSent(), { type: 'TIMER', name: 'cred-refresh' }).effects, []);
    const down = reduce(atCall(), { type: 'SOCKET_CLOSED', code: 1006 }).state;
    assert.deepEqual(reduce(down, { type: 'TIMER', name: 'cred-refresh' }).effects, []);
    const renewing = reduce(atCall(), { type: 'TIMER', name: 'cred-refresh' }).state;
    assert.deepEqual(reduce(renewing, { type: 'TIMER', name: 'cred-refresh' }).effects, []);
  });
});

describe('resuming the signaling socket', () => {
  test('a dropped socket in a call resumes and the call keeps running', () => {
    const r = reduce(atCall(), { type: 'SOCKET_CLOSED', code: 1006 });
    assert.equal(r.state.phase, Phase.CALL);
    assert.equal(r.state.socket, 'resuming');
    assert.equal(r.state.notice.code, 'server-reconnecting');
    assert.match(r.state.notice.text, /your call continues/);
    assert.ok(!types(r.effects).includes('pc.close'));
    assert.ok(!types(r.effects).includes('media.stop'));
    assert.deepEqual(r.effects, [
      { type: 'timer.start', name: 'resume-retry', ms: Timing.RESUME_BACKOFF_MS[0] },
      { type: 'timer.start', name: 'resume-deadline', ms: 20000 },
    ]);
  });

  test('retry opens a socket, which sends the resume token first', () => {
    const dropped = reduce(atCall(), { type: 'SOCKET_CLOSED', code: 1006 }).state;
    const open = reduce(dropped, { type: 'TIMER', name: 'resume-retry' });
    assert.deepEqual(open.effects, [{ type: 'socket.open' }]);
    const r = reduce(open.state, { type: 'SOCKET_OPEN' });
    assert.deepEqual(sent(r.effects), [{ type: 'resume', token: 'tok-1' }]);
  });

  test('resumed: session refreshed, held messages flushed, notice gone', () => {
    const dropped = reduce(atCall(), { type: 'SOCKET_CLOSED', code: 1006 }).state;
    const r = reduce(dropped, msg({ type: 'resumed', data: joinData({ resumeToken: 'tok-2', iceServers: [] }) }));
    assert.equal(r.state.socket, 'open');
    assert.equal(r.state.phase, Phase.CALL);
    assert.equal(r.state.session.resumeToken, 'tok-2');
    assert.equal(r.state.notice, null);
    assert.deepEqual(types(r.effects), ['timer.cancel', 'timer.cancel', 'socket.flush', 'pc.configure', 'timer.start']);
    assert.deepEqual(reduce(atCall(), msg({ type: 'resumed', data: joinData() })).effects, [], 'resumed without a resume is ignored');
  });

  test('failed reconnects back off, the deadline is set once', () => {
    let s = reduce(atWaiting(), { type: 'SOCKET_CLOSED', code: 1006 }).state;
    const delays = [Timing.RESUME_BACKOFF_MS[0]];
    for (let i = 0; i < 5; i++) {
      const r = reduce(s, { type: 'SOCKET_CLOSED', code: 1006 });
      assert.ok(!timersStarted(r.effects).includes('resume-deadline'));
      delays.push(find(r.effects, 'timer.start').ms);
      s = r.state;
    }
    const last = Timing.RESUME_BACKOFF_MS.at(-1);
    assert.deepEqual(delays, [...Timing.RESUME_BACKOFF_MS, last, last]);
    assert.equal(s.phase, Phase.WAITING);
  });

  test('the grace period passes: the call ended', () => {
    const s = reduce(atCall(), { type: 'SOCKET_CLOSED', code: 1006 }).state;
    const r = reduce(s, { type: 'TIMER', name: 'resume-deadline' });
    assert.equal(r.state.phase, Phase.ENDED);
    assert.equal(r.state.problem.code, 'SERVER_LOST');
    assert.ok(types(r.effects).includes('pc.close'));
    assert.equal(reduce(atCall(), { type: 'TIMER', name: 'resume-deadline' }).state.phase, Phase.CALL, 'stale deadline ignored');
    assert.deepEqual(reduce(atCall(), { type: 'TIMER', name: 'resume-retry' }).effects, [], 'stale retry ignored');
  });

  test('the server refuses the resume: ended, with what to do', () => {
    const s = reduce(atCall(), { type: 'SOCKET_CLOSED', code: 1006 }).state;
    const r = reduce(s, msg({ type: 'error', code: 'RESUME_FAILED', error: 'Cannot resume' }));
    assert.equal(r.state.phase, Phase.ENDED);
    assert.equal(r.state.problem.code, 'RESUME_FAILED');
    assert.equal(r.state.problem.action, 'retry');
    assert.deepEqual(reduce(r.state, { type: 'SOCKET_CLOSED', code: 1008 }).effects, [], 'the close after it changes nothing');
  });

  test('online while resuming reconnects at once', () => {
    const s = reduce(atWaiting(), { type: 'SOCKET_CLOSED', code: 1006 }).state;
    assert.deepEqual(types(reduce(s, { type: 'ONLINE' }).effects), ['timer.cancel', 'socket.open']);
  });

  test('room service restarting: error then 1012 close resumes instead of ending', () => {
    const r = run(atCall(), msg({ type: 'error', code: 'SERVICE_UNAVAILABLE', error: 'Lost the connection to the room service' }), { type: 'SOCKET_CLOSED', code: 1012 });
    assert.equal(r.state.phase, Phase.CALL);
    assert.equal(r.state.socket, 'resuming');
  });

  test('a policy close after an error is final and uses the error text', () => {
    const r = run(atCall(), msg({ type: 'error', code: 'SOMETHING_NEW', error: 'Odd thing' }), { type: 'SOCKET_CLOSED', code: 1008 });
    assert.equal(r.state.phase, Phase.ERROR);
    assert.equal(r.state.problem.code, 'SOMETHING_NEW');
    assert.equal(r.state.problem.text, 'Odd thing.');
  });

  test('rate limited in a call is final', () => {
    const r = reduce(atCall(), msg({ type: 'error', code: 'RATE_LIMITED', error: 'Too many messages' }));
    assert.equal(r.state.phase, Phase.ERROR);
    assert.equal(r.state.problem.action, 'reload');
  });

  test('an admin closing the room ends the call', () => {
    const r = reduce(atCall(), msg({ type: 'error', code: 'ROOM_CLOSED', error: 'closed' }));
    assert.equal(r.state.phase, Phase.ENDED);
    assert.equal(r.state.problem.code, 'ROOM_CLOSED');
  });

  test('without a resume token a drop is final', () => {
    const s = atWaiting({ resumeToken: '' });
    const r = reduce(s, { type: 'SOCKET_CLOSED', code: 1006 });
    assert.equal(r.state.phase, Phase.ERROR);
    assert.equal(r.state.problem.code, 'CLOSE_NETWORK');
  });

  test('a close we asked for is ignored', () => {
    const ended = reduce(atCall(), { type: 'HANG_UP' }).state;
    assert.deepEqual(reduce(ended, { type: 'SOCKET_CLOSED', code: 1000 }), { state: ended, effects: [] });
  });

  test('non-fatal errors in the room are remembered, not shown', () => {
    const r = reduce(atCall(), msg({ type: 'error', code: 'NOT_IN_ROOM', error: 'x' }));
    assert.equal(r.state.phase, Phase.CALL);
    assert.deepEqual(r.state.lastServerError, { code: 'NOT_IN_ROOM', text: 'x' });
  });

  test('server errors on the PIN screen are ignored', () => {
    assert.equal(reduce(atPin(), msg({ type: 'error', code: 'RATE_LIMITED' })).state.phase, Phase.PIN);
  });
});

describe('ended and error screens', () => {
  test('call again reuses the PIN and starts with media', () => {
    const ended = reduce(atCall(), { type: 'HANG_UP' }).state;
    const r = reduce(ended, { type: 'AGAIN' });
    assert.equal(r.state.phase, Phase.MEDIA);
    assert.equal(r.state.pin, '123456');
    assert.equal(r.state.problem, null);
    assert.deepEqual(types(r.effects), ['media.acquire']);
  });

  test('change PIN returns to PIN entry with the PIN kept', () => {
    const err = reduce(atMedia(), { type: 'MEDIA_FAILED', name: 'NotAllowedError' }).state;
    const r = reduce(err, { type: 'EDIT_PIN' });
    assert.equal(r.state.phase, Phase.PIN);
    assert.equal(r.state.pin, '123456');
    assert.deepEqual(r.effects, []);
  });

  test('again and edit are ignored elsewhere', () => {
    assert.deepEqual(reduce(atCall(), { type: 'AGAIN' }).effects, []);
    assert.equal(reduce(atCall(), { type: 'EDIT_PIN' }).state.phase, Phase.CALL);
  });

  test('unknown actions and messages change nothing', () => {
    const s = atCall();
    assert.equal(reduce(s, { type: 'NOPE' }).state, s);
    assert.equal(reduce(s, msg({ type: 'who-knows' })).state, s);
    assert.equal(reduce(s, { type: 'SOCKET_MESSAGE', msg: null }).state, s);
    assert.equal(reduce(s, msg({ type: 'pong' })).state, s);
    assert.equal(reduce(s, { type: 'TIMER', name: 'nope' }).state, s);
  });
});

describe('support code', () => {
  const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const CODE = 'BHWLYFDR'; // supportCodeOf the trace id above
  const joinSent = () => run(atPin(), { type: 'SUBMIT', traceparent: TP }, { type: 'MEDIA_READY', audio: true, video: true, cameras: 1 }, { type: 'SOCKET_OPEN' });

  test('the call\'s traceparent goes with its join-pin', () => {
    const r = joinSent();
    assert.equal(r.state.trace, TP);
    assert.deepEqual(sent(r.all), [{ type: 'join-pin', pin: '123456', traceparent: TP }]);
    assert.equal(reduce(atPin(), { type: 'SUBMIT' }).state.trace, null, 'no traceparent given, none kept');
  });

  test('a refused join shows the server\'s code on the PIN screen', () => {
    const r = reduce(joinSent().state, msg({ type: 'error', code: 'ROOM_FULL', error: 'Room 123456 is full', supportCode: 'K7QX4M2P' }));
    assert.equal(r.state.phase, Phase.PIN);
    assert.equal(r.state.pinError.code, 'ROOM_FULL');
    assert.equal(r.state.pinError.supportCode, 'K7QX4M2P');
  });

  test('a server error without a valid code falls back to the call\'s code', () => {
    const r = reduce(joinSent().state, msg({ type: 'error', code: 'SERVICE_UNAVAILABLE', error: 'x', supportCode: 'not one' }));
    assert.equal(r.state.phase, Phase.ERROR);
    assert.equal(r.state.problem.supportCode, CODE);
  });

  test('a failure this page detects shows the call\'s code, and its leave is in the call\'s trace', () => {
    let s = reduce(joinSent().state, msg({ type: 'join-pin', data: joinData({ role: 'second' }) })).state;
    const r = reduce(s, { type: 'TIMER', name: 'negotiate' });
    assert.equal(r.state.problem.code, 'NEGOTIATION_TIMEOUT');
    assert.equal(r.state.problem.supportCode, CODE);
    assert.deepEqual(sent(r.effects), [{ type: 'leave', traceparent: TP }]);
    s = reduce(reduce(joinSent().state, msg({ type: 'join-pin', data: joinData() })).state, msg({ type: 'peer-joined' })).state;
    assert.equal(reduce(s, { type: 'PC_ERROR' }).state.problem.supportCode, CODE);
  });

  test('media errors and lost sockets have a code too; a hang-up has none', () => {
    const media = run(atPin(), { type: 'SUBMIT', traceparent: TP }, { type: 'MEDIA_FAILED', name: 'NotAllowedError' }).state;
    assert.equal(media.problem.supportCode, CODE);
    assert.equal(reduce(joinSent().state, { type: 'SOCKET_CLOSED', code: 1006 }).state.problem.supportCode, CODE);
    const call = reduce(joinSent().state, msg({ type: 'join-pin', data: joinData() })).state;
    const hung = reduce(call, { type: 'HANG_UP' });
    assert.equal(hung.state.problem.supportCode, undefined);
    assert.deepEqual(sent(hung.effects), [{ type: 'leave', traceparent: TP }]);
  });

  test('a non-fatal error keeps its code for the close that follows', () => {
    const s = reduce(joinSent().state, msg({ type: 'join-pin', data: joinData({ resumeToken: '' }) })).state;
    const e = reduce(s, msg({ type: 'error', code: 'SERVICE_UNAVAILABLE', error: 'x', supportCode: 'K7QX4M2P' })).state;
    assert.deepEqual(e.lastServerError, { code: 'SERVICE_UNAVAILABLE', text: 'x', supportCode: 'K7QX4M2P' });
    assert.equal(reduce(e, { type: 'SOCKET_CLOSED', code: 1011 }).state.problem.supportCode, 'K7QX4M2P');
  });
});

describe('normalizeSession', () => {
  test('defaults for a server that sends only iceServers', () => {
    const s = normalizeSession({ iceServers: [] });
    assert.equal(s.iceTransportPolicy, 'all');
    assert.equal(s.role, null);
    assert.equal(s.resumeToken, null);
    assert.equal(s.resumeGraceMs, Timing.DEFAULT_RESUME_GRACE_MS);
  });

  test('unknown policy means all; resumed data keeps what it does not repeat', () => {
    assert.equal(normalizeSession({ iceTransportPolicy: 'bogus' }).iceTransportPolicy, 'all');
    const prev = normalizeSession(joinData({ iceTransportPolicy: 'relay' }));
    const next = normalizeSession({ resumeToken: 'tok-2' }, prev);
    assert.equal(next.iceTransportPolicy, 'relay');
    assert.equal(next.resumeToken, 'tok-2');
    assert.equal(next.participantId, 'p1');
    assert.deepEqual(next.iceServers, prev.iceServers);
  });

  test('garbage is tolerated', () => {
    assert.equal(normalizeSession(null).iceServers.length, 0);
    assert.equal(normalizeSession('x').resumeGraceMs, Timing.DEFAULT_RESUME_GRACE_MS);
    assert.equal(normalizeSession({ resumeGraceMs: -5 }).resumeGraceMs, Timing.DEFAULT_RESUME_GRACE_MS);
  });
});
