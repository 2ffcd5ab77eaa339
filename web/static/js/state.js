// The client's state machine: reduce(state, action) -> {state, effects}. It is pure: it never
// touches the network, media, timers or the DOM. It describes what must happen as effects
// ({type: 'socket.send', msg}, ...) that app.js hands to the effect modules, whose results
// come back as actions. So every transition can be tested with `node --test`.

import { sanitizePin, validatePin } from './pin.js';
import { describePinProblem, describeServerError, describeClose, describeMediaError, callProblems } from './errors.js';
import { initialQuality, updateQuality } from './quality.js';
import { traceIdOf, supportCodeOf, validSupportCode } from './trace.js';

// Phases, in the order a call usually goes through them.
export const Phase = Object.freeze({
  PIN: 'pin', // PIN entry
  MEDIA: 'media', // asking for camera and microphone
  CONNECTING: 'connecting', // socket open, join-pin sent, no answer yet
  WAITING: 'waiting', // in the room alone: PIN shown, can cancel
  NEGOTIATING: 'negotiating', // a peer is there, offer/answer/candidates under way
  CALL: 'call', // media flows
  RECONNECTING: 'reconnecting', // media path lost in a call, ICE restart under way
  ENDED: 'ended', // hung up, or the call ended for good
  ERROR: 'error', // something failed; the screen says what to do
});

// Phases in which we hold a room membership (and a resume token).
const IN_ROOM = new Set([Phase.WAITING, Phase.NEGOTIATING, Phase.CALL, Phase.RECONNECTING]);
// Phases that have a peer connection to the other member.
const WITH_PEER = new Set([Phase.NEGOTIATING, Phase.CALL, Phase.RECONNECTING]);

// Timings, with the reason for each value.
export const Timing = Object.freeze({
  // No join-pin reply in this time means the server is unreachable or stuck.
  CONNECT_TIMEOUT_MS: 10000,
  // ICE 'disconnected' often heals by itself within a couple of seconds (a Wi-Fi hiccup);
  // restart only when it lasts longer.
  ICE_GRACE_MS: 3000,
  // One ICE restart gets this long to reconnect before the next try.
  ICE_RESTART_TIMEOUT_MS: 10000,
  // Tries before we tell the caller the connection is gone.
  MAX_ICE_RESTARTS: 3,
  // Offer to connected: generous, TURN over TCP on a slow network takes several seconds.
  NEGOTIATION_TIMEOUT_MS: 30000,
  // Delays between socket reconnection attempts while resuming; the last one repeats until
  // the server's grace period (resumeGraceMs) is over.
  RESUME_BACKOFF_MS: [250, 1000, 2000, 4000],
  // Used when the server did not say how long it holds our slot.
  DEFAULT_RESUME_GRACE_MS: 30000,
  // TURN credentials are renewed (a resume on a second socket, credentials.md) when this
  // share of their TTL has passed, so those on hand are valid even when the renewal made for
  // an ICE restart fails; never sooner than the minimum (a tiny TTL must not become a resume
  // loop), and within what setTimeout can hold.
  CRED_REFRESH_SHARE: 0.9,
  CRED_REFRESH_MIN_MS: 60000,
  CRED_REFRESH_MAX_MS: 2147483647,
  // A renewal that failed (server busy, join limit) is tried again after this.
  CRED_REFRESH_RETRY_MS: 60000,
  // Messages from the other member held while a renewal is under way (it lasts at most a few
  // seconds; an ICE restart is a few dozen messages).
  MAX_HELD: 200,
});

export function initialState({ pin = '' } = {}) {
  return {
    phase: Phase.PIN,
    pin: sanitizePin(pin),
    pinError: null, // {code, title, text}: shown inline under the PIN field
    problem: null, // {code, title, text, action, supportCode}: shown on the ended and error screens
    // The call's traceparent (SUBMIT, AGAIN): its join-pin and leave carry it, and a failure
    // this page detects shows its support code (docs/operations.md).
    trace: null,
    notice: null, // {code, text}: a status line (audio only, peer left, reconnecting, ...)
    session: null, // what join-pin/resumed said: participantId, role, resumeToken, iceServers, ...
    socket: 'closed', // closed | connecting | open | resuming
    resumeAttempt: 0,
    // A credential renewal under way on a second socket while this one stays open: 'ice' (for
    // an ICE restart) or 'ttl' (the credentials are getting old); null when none.
    refreshing: null,
    held: [], // the other member's messages that arrived during a renewal, replayed after it
    restartPending: false, // the offerer restarts ICE once the renewal (or resume) is over
    offerer: false, // we make offers (and ICE restarts): we were in the room first
    peer: false, // the other member is in the room
    iceState: 'new',
    iceRestarts: 0,
    lastServerError: null, // {code, text} of an error that did not end the call by itself
    path: null, // 'direct' | 'relay' once a candidate pair is selected
    quality: initialQuality,
    safety: null, // the safety code's words once both descriptions are set (safety.js)
    media: { audio: false, video: false, cameras: 0, muted: false, cameraOff: false },
    selfViewHidden: false,
  };
}

const out = (state, effects = []) => ({ state, effects });
const timer = (name, ms) => ({ type: 'timer.start', name, ms });
const cancel = (...names) => names.map((name) => ({ type: 'timer.cancel', name }));
const send = (msg) => ({ type: 'socket.send', msg });
const refresh = (state) => ({ type: 'socket.refresh', token: state.session.resumeToken });
const traced = (state, msg) => (state.trace ? { ...msg, traceparent: state.trace } : msg);

// Problems that are no failure: they show no support code.
const NORMAL_END = new Set(['HUNG_UP']);

// withSupportCode gives a problem the code the caller reads out to support: the server's, for
// an error it sent (it is on the span of the action that failed), else the code of the call's
// trace, whose join-pin and leave spans carry it.
export function withSupportCode(problem, state, serverCode) {
  if (!problem || NORMAL_END.has(problem.code)) return problem;
  const supportCode = validSupportCode(serverCode) || problem.supportCode || supportCodeOf(traceIdOf(state.trace)) || null;
  return { ...problem, supportCode };
}

// credTimer arms the renewal of the TURN credentials a session carries, or cancels it when
// the server did not say how long they last.
function credTimer(session) {
  const ttl = Number(session?.credentialTtl);
  if (!Number.isFinite(ttl) || ttl <= 0) return cancel('cred-refresh')[0];
  const ms = Math.min(Math.max(ttl * 1000 * Timing.CRED_REFRESH_SHARE, Timing.CRED_REFRESH_MIN_MS), Timing.CRED_REFRESH_MAX_MS);
  return timer('cred-refresh', Math.round(ms));
}

// normalizeSession keeps what the client uses from join-pin/resumed data, with safe defaults.
export function normalizeSession(data, prev = null) {
  const d = data && typeof data === 'object' ? data : {};
  const policy = d.iceTransportPolicy === 'relay' ? 'relay' : 'all';
  const grace = Number.isFinite(d.resumeGraceMs) && d.resumeGraceMs > 0 ? d.resumeGraceMs : null;
  return {
    iceServers: Array.isArray(d.iceServers) ? d.iceServers : (prev?.iceServers ?? []),
    iceTransportPolicy: d.iceTransportPolicy ? policy : (prev?.iceTransportPolicy ?? 'all'),
    participantId: d.participantId ?? prev?.participantId ?? null,
    role: d.role === 'second' || d.role === 'first' ? d.role : (prev?.role ?? null),
    resumeToken: typeof d.resumeToken === 'string' && d.resumeToken ? d.resumeToken : (prev?.resumeToken ?? null),
    resumeGraceMs: grace ?? prev?.resumeGraceMs ?? Timing.DEFAULT_RESUME_GRACE_MS,
    credentialTtl: d.credentialTtl ?? prev?.credentialTtl ?? null,
  };
}

// teardown ends everything this page holds: timers, stats, membership, socket, peer, media.
function teardown(state, { leave }) {
  const effects = [{ type: 'timer.cancelAll' }, { type: 'stats.stop' }];
  if (leave && state.socket === 'open') effects.push(send(traced(state, { type: 'leave' })));
  effects.push({ type: 'socket.close' }, { type: 'pc.close' }, { type: 'media.stop' });
  return effects;
}

// finish moves to a terminal or PIN phase, dropping everything about the call.
function finish(state, phase, fields, { leave }) {
  const next = {
    ...initialState(),
    pin: state.pin,
    media: { ...initialState().media },
    selfViewHidden: state.selfViewHidden,
    trace: state.trace, // the screen that follows still belongs to this call
    phase,
    ...fields,
  };
  if (next.problem) next.problem = withSupportCode(next.problem, state);
  return out(next, teardown(state, { leave }));
}

// audioOnlyText says why the camera is not used; the call goes on with the microphone.
function audioOnlyText(videoProblem) {
  const why = {
    MEDIA_IN_USE: 'Your camera is in use by another app',
    MEDIA_DENIED: 'The camera is blocked for this page',
  }[videoProblem] ?? 'No camera found';
  return `${why}: you are on audio only. You will still see the other person.`;
}

// startMedia is the way out of PIN entry: check the PIN, then ask for camera and microphone
// before joining, so a refused permission never occupies a room slot or shows the other
// member a join and a leave.
function startMedia(state, trace) {
  const problem = validatePin(state.pin);
  if (problem) return out({ ...state, phase: Phase.PIN, pinError: describePinProblem(problem) });
  return out(
    { ...initialState(), pin: state.pin, selfViewHidden: state.selfViewHidden, phase: Phase.MEDIA, trace: typeof trace === 'string' ? trace : null },
    [{ type: 'media.acquire' }],
  );
}

// beginIceRestart enters RECONNECTING. Only the offerer restarts (one side restarting avoids
// offer glare); the answerer waits for the offerer's restart offer for as long as all tries take.
// Each try starts with fresh TURN credentials on both sides: the relay may have restarted, or
// the old ones may have been revoked or expired. With the socket open, a renewal (a resume on a
// second socket) is started and the offerer restarts once it is over; with the socket down, the
// offerer restarts once the resume is back (which brings fresh credentials too); without a
// resume token there is no way to renew them, and the offerer restarts at once.
function beginIceRestart(state) {
  const restarts = state.iceRestarts + 1;
  let next = { ...state, phase: Phase.RECONNECTING, iceRestarts: restarts, notice: { code: 'ice-reconnecting', text: 'Connection to the other person lost. Reconnecting\u2026' } };
  if (restarts > Timing.MAX_ICE_RESTARTS) {
    return finish(state, Phase.ERROR, { problem: callProblems.ICE_FAILED }, { leave: true });
  }
  const effects = [...cancel('ice-grace', 'ice-restart')];
  const canRenew = !!state.session?.resumeToken && (state.socket === 'open' || state.socket === 'resuming');
  if (canRenew) {
    if (state.socket === 'open' && !state.refreshing) {
      next = { ...next, refreshing: 'ice' };
      effects.push(refresh(state));
    }
    if (state.offerer) next = { ...next, restartPending: true };
  } else if (state.offerer) {
    effects.push({ type: 'pc.restartIce' });
  }
  effects.push(timer('ice-restart', Timing.ICE_RESTART_TIMEOUT_MS));
  return out(next, effects);
}

// afterRenewal replays what the other member sent during a renewal, now that the fresh
// credentials are applied (or the renewal failed), and makes the restart that waited for it.
function afterRenewal(state, held, effects) {
  let s = state;
  const fx = [...effects];
  for (const m of held) {
    const r = onServerMessage(s, m);
    s = r.state;
    fx.push(...r.effects);
  }
  if (s.restartPending) {
    if (s.offerer && s.phase === Phase.RECONNECTING && s.socket === 'open') {
      s = { ...s, restartPending: false };
      fx.push({ type: 'pc.restartIce' });
    } else if (s.phase !== Phase.RECONNECTING) {
      s = { ...s, restartPending: false };
    }
  }
  return out(s, fx);
}

// Messages from the other member that wait while a renewal is under way: an offer must be
// answered with the fresh credentials, and the rest keep their order around it.
const HELD = new Set(['offer', 'answer', 'ice-candidate', 'peer-joined', 'peer-left']);

function onServerMessage(state, msg) {
  if (state.refreshing && HELD.has(msg.type)) {
    return out({ ...state, held: [...state.held, msg].slice(-Timing.MAX_HELD) });
  }
  switch (msg.type) {
    case 'join-pin': {
      if (state.phase !== Phase.CONNECTING) return out(state);
      const session = normalizeSession(msg.data);
      const second = session.role === 'second';
      const next = { ...state, session, peer: second, offerer: false, phase: second ? Phase.NEGOTIATING : Phase.WAITING };
      const effects = [...cancel('connect'), { type: 'pc.create', session }, credTimer(session)];
      if (second) effects.push(timer('negotiate', Timing.NEGOTIATION_TIMEOUT_MS));
      return out(next, effects);
    }
    case 'resumed': {
      // The answer to a resume after a drop, or to a renewal on a second socket: either way it
      // carries fresh TURN credentials, applied before anything that waited for them.
      if (state.socket !== 'resuming' && !state.refreshing) return out(state);
      const session = normalizeSession(msg.data, state.session);
      const next = { ...state, session, socket: 'open', refreshing: null, held: [], resumeAttempt: 0, lastServerError: null, notice: state.notice?.code === 'server-reconnecting' ? null : state.notice };
      const effects = [...cancel('resume-retry', 'resume-deadline'), { type: 'socket.flush' }, { type: 'pc.configure', session }, credTimer(session)];
      return afterRenewal(next, state.held, effects);
    }
    case 'peer-joined': {
      if (state.phase !== Phase.WAITING) return out(state);
      return out(
        { ...state, phase: Phase.NEGOTIATING, peer: true, offerer: true, notice: state.notice?.code === 'peer-left' ? null : state.notice },
        [{ type: 'pc.offer' }, timer('negotiate', Timing.NEGOTIATION_TIMEOUT_MS)],
      );
    }
    case 'offer': {
      if (!IN_ROOM.has(state.phase) || !msg.data) return out(state);
      if (state.phase === Phase.WAITING) {
        // A server that sends no role: the offer tells us a peer is there.
        return out(
          { ...state, phase: Phase.NEGOTIATING, peer: true, offerer: false, notice: state.notice?.code === 'peer-left' ? null : state.notice },
          [{ type: 'pc.answer', description: msg.data }, timer('negotiate', Timing.NEGOTIATION_TIMEOUT_MS)],
        );
      }
      if (state.phase === Phase.CALL && !state.offerer && state.iceState === 'disconnected') {
        // The offerer's ICE restart arrives while our own grace period runs: the path is down
        // on both sides. Reconnect as if the grace had passed, so the offer is answered with
        // fresh credentials.
        const r = beginIceRestart(state);
        if (r.state.refreshing) return out({ ...r.state, held: [...r.state.held, msg] }, r.effects);
        return out(r.state, [...r.effects, { type: 'pc.answer', description: msg.data }]);
      }
      return out(state, [{ type: 'pc.answer', description: msg.data }]);
    }
    case 'answer': {
      if (!WITH_PEER.has(state.phase) || !state.offerer || !msg.data) return out(state);
      return out(state, [{ type: 'pc.remote', description: msg.data }]);
    }
    case 'ice-candidate': {
      if (!IN_ROOM.has(state.phase) || !msg.data) return out(state);
      return out(state, [{ type: 'pc.candidate', candidate: msg.data }]);
    }
    case 'peer-left': {
      if (!IN_ROOM.has(state.phase)) return out(state);
      // Stay in the room: the PIN still works, and whoever joins next gets our offer.
      return out(
        { ...state, phase: Phase.WAITING, peer: false, offerer: false, path: null, iceState: 'new', iceRestarts: 0, restartPending: false, quality: initialQuality, safety: null, notice: { code: 'peer-left', text: 'The other person left the call. You can wait for them here, or hang up.' } },
        [...cancel('negotiate', 'ice-grace', 'ice-restart'), { type: 'stats.stop' }, { type: 'pc.create', session: state.session }],
      );
    }
    case 'pong':
      return out(state);
    case 'error':
      return onServerError(state, msg);
    default:
      return out(state);
  }
}

// Errors after which the server closes the socket and a resume would be refused too.
const FATAL_IN_ROOM = new Set(['RATE_LIMITED', 'INVALID_MESSAGE', 'MESSAGE_TOO_BIG', 'RESUME_FAILED', 'INVALID_PIN', 'ROOM_FULL']);

function onServerError(state, msg) {
  const { code, error: text } = msg;
  const problem = () => withSupportCode(describeServerError(code, text, state.pin, msg.retryAfterMs), state, msg.supportCode);
  if (state.phase === Phase.CONNECTING) {
    if (code === 'INVALID_PIN' || code === 'ROOM_FULL') {
      // The caller fixes these on the PIN screen.
      return finish(state, Phase.PIN, { pinError: problem() }, { leave: false });
    }
    return finish(state, Phase.ERROR, { problem: problem() }, { leave: false });
  }
  if (!IN_ROOM.has(state.phase)) return out(state);
  if (code === 'ROOM_CLOSED' || (state.socket === 'resuming' && code === 'RESUME_FAILED')) {
    return finish(state, Phase.ENDED, { problem: problem() }, { leave: false });
  }
  if (FATAL_IN_ROOM.has(code)) {
    return finish(state, Phase.ERROR, { problem: problem() }, { leave: false });
  }
  // Anything else (the room service restarting, a refused message) does not end the call by
  // itself: if the server closes the socket next, we resume; the text explains a fatal close.
  const supportCode = validSupportCode(msg.supportCode);
  return out({ ...state, lastServerError: supportCode ? { code, text, supportCode } : { code, text } });
}

function onSocketClosed(state, code) {
  if (state.socket === 'closed') return out(state);
  if (!IN_ROOM.has(state.phase)) {
    if (state.phase === Phase.CONNECTING) return finish(state, Phase.ERROR, { problem: describeClose(code) }, { leave: false });
    return out({ ...state, socket: 'closed' });
  }
  // A policy or size close is deliberate: resuming would be refused the same way.
  if (!state.session?.resumeToken || code === 1008 || code === 1009) {
    const last = state.lastServerError;
    const problem = last ? withSupportCode(describeServerError(last.code, last.text, state.pin), state, last.supportCode) : describeClose(code);
    return finish(state, Phase.ERROR, { problem }, { leave: false });
  }
  const attempt = state.resumeAttempt + 1;
  const backoff = Timing.RESUME_BACKOFF_MS[Math.min(attempt, Timing.RESUME_BACKOFF_MS.length) - 1];
  const effects = [timer('resume-retry', backoff)];
  if (state.socket !== 'resuming') effects.push(timer('resume-deadline', state.session.resumeGraceMs));
  const notice = { code: 'server-reconnecting', text: state.phase === Phase.CALL ? 'Connection to the server lost. Reconnecting\u2026 your call continues.' : 'Connection to the server lost. Reconnecting\u2026' };
  // A renewal under way ends with its socket (signaling.js reports the drop instead of its
  // outcome): the resume brings fresh credentials, then the held messages and the restart.
  return out({ ...state, socket: 'resuming', refreshing: null, resumeAttempt: attempt, lastServerError: null, notice }, effects);
}

function onTimer(state, name) {
  switch (name) {
    case 'connect':
      if (state.phase !== Phase.CONNECTING) return out(state);
      return finish(state, Phase.ERROR, { problem: callProblems.CONNECT_TIMEOUT }, { leave: false });
    case 'resume-retry':
      if (state.socket !== 'resuming') return out(state);
      return out(state, [{ type: 'socket.open' }]);
    case 'resume-deadline':
      if (state.socket !== 'resuming') return out(state);
      return finish(state, Phase.ENDED, { problem: callProblems.SERVER_LOST }, { leave: false });
    case 'negotiate':
      if (state.phase !== Phase.NEGOTIATING) return out(state);
      return finish(state, Phase.ERROR, { problem: callProblems.NEGOTIATION_TIMEOUT }, { leave: true });
    case 'ice-grace':
      if (state.phase !== Phase.CALL || state.iceState !== 'disconnected') return out(state);
      return beginIceRestart(state);
    case 'ice-restart':
      if (state.phase !== Phase.RECONNECTING) return out(state);
      return beginIceRestart(state);
    case 'cred-refresh':
      // The credentials are getting old: renew them now, while nothing is wrong, so an ICE
      // restart never has to rely on expired ones. A resume under way brings new ones anyway.
      if (!IN_ROOM.has(state.phase) || state.socket !== 'open' || state.refreshing || !state.session?.resumeToken) return out(state);
      return out({ ...state, refreshing: 'ttl' }, [refresh(state)]);
    default:
      return out(state);
  }
}

function onIceState(state, ice) {
  const next = { ...state, iceState: ice };
  if (ice === 'connected' || ice === 'completed') {
    if (state.phase !== Phase.NEGOTIATING && state.phase !== Phase.RECONNECTING) return out(next, cancel('ice-grace'));
    const notice = state.notice?.code === 'ice-reconnecting' ? null : state.notice;
    return out(
      { ...next, phase: Phase.CALL, iceRestarts: 0, notice },
      [...cancel('negotiate', 'ice-grace', 'ice-restart'), { type: 'stats.start' }],
    );
  }
  if (ice === 'disconnected' && state.phase === Phase.CALL) {
    return out(next, [timer('ice-grace', Timing.ICE_GRACE_MS)]);
  }
  if (ice === 'failed' && state.phase === Phase.CALL) return beginIceRestart(next);
  return out(next);
}

export function reduce(state, action) {
  switch (action.type) {
    case 'PIN_CHANGED': {
      if (state.phase !== Phase.PIN) return out(state);
      const pin = sanitizePin(action.value);
      return out({ ...state, pin, pinError: pin === state.pin ? state.pinError : null });
    }
    case 'SUBMIT':
      if (state.phase !== Phase.PIN) return out(state);
      return startMedia(state, action.traceparent);
    case 'AGAIN': // "Call again" on the ended and error screens: same PIN
      if (state.phase !== Phase.ENDED && state.phase !== Phase.ERROR) return out(state);
      return startMedia({ ...state, phase: Phase.PIN }, action.traceparent);
    case 'EDIT_PIN': // back to PIN entry from the ended and error screens
      if (state.phase !== Phase.ENDED && state.phase !== Phase.ERROR) return out(state);
      return out({ ...initialState(), pin: state.pin, selfViewHidden: state.selfViewHidden });

    case 'MEDIA_READY': {
      if (state.phase !== Phase.MEDIA) return out(state, [{ type: 'media.stop' }]); // cancelled meanwhile
      const media = { ...state.media, audio: !!action.audio, video: !!action.video, cameras: action.cameras ?? 0 };
      const notice = media.video ? null : { code: 'audio-only', text: audioOnlyText(action.videoProblem) };
      return out({ ...state, media, notice, phase: Phase.CONNECTING, socket: 'connecting' }, [{ type: 'socket.open' }, timer('connect', Timing.CONNECT_TIMEOUT_MS)]);
    }
    case 'MEDIA_FAILED':
      if (state.phase !== Phase.MEDIA) return out(state);
      return finish(state, Phase.ERROR, { problem: describeMediaError(action.name) }, { leave: false });
    case 'CAMERAS':
      return out({ ...state, media: { ...state.media, cameras: action.count } });

    case 'SOCKET_OPEN':
      if (state.phase === Phase.CONNECTING && state.socket === 'connecting') {
        return out({ ...state, socket: 'open' }, [send(traced(state, { type: 'join-pin', pin: state.pin }))]);
      }
      if (state.socket === 'resuming' && state.session?.resumeToken) {
        return out(state, [cancel('resume-retry')[0], send({ type: 'resume', token: state.session.resumeToken })]);
      }
      return out(state);
    case 'SOCKET_MESSAGE':
      if (!action.msg || typeof action.msg.type !== 'string') return out(state);
      return onServerMessage(state, action.msg);
    case 'SOCKET_CLOSED':
      return onSocketClosed(state, action.code);
    case 'REFRESH_FAILED': {
      // The second socket's resume was refused or timed out; the first socket still carries
      // the session. Go on with the credentials on hand, and try again later.
      if (!state.refreshing) return out(state);
      const effects = [{ type: 'socket.flush' }];
      if (state.session?.credentialTtl) effects.push(timer('cred-refresh', Timing.CRED_REFRESH_RETRY_MS));
      return afterRenewal({ ...state, refreshing: null, held: [] }, state.held, effects);
    }

    case 'LOCAL_DESCRIPTION':
      if (!WITH_PEER.has(state.phase) || !action.description) return out(state);
      return out(state, [send({ type: action.description.type, data: action.description })]);
    case 'LOCAL_CANDIDATE':
      if (!WITH_PEER.has(state.phase) || !action.candidate) return out(state);
      return out(state, [send({ type: 'ice-candidate', data: action.candidate })]);
    case 'ICE_STATE':
      return onIceState(state, action.state);
    case 'SAFETY_CODE': {
      if (!WITH_PEER.has(state.phase)) return out(state);
      const words = Array.isArray(action.words) && action.words.length ? action.words : null;
      return out({ ...state, safety: words });
    }
    case 'PC_ERROR':
      if (!IN_ROOM.has(state.phase)) return out(state);
      return finish(state, Phase.ERROR, { problem: callProblems.PEER_SETUP }, { leave: true });
    case 'STATS': {
      if (state.phase !== Phase.CALL && state.phase !== Phase.RECONNECTING) return out(state);
      return out({ ...state, path: action.sample.path ?? state.path, quality: updateQuality(state.quality, action.sample) });
    }
    case 'TIMER':
      return onTimer(state, action.name);
    case 'ONLINE': {
      // The network came back or changed: reconnect at once instead of waiting for a backoff,
      // and let the offerer restart ICE since the old candidates may be gone.
      let res = out(state);
      if (state.socket === 'resuming') res = out(state, [...cancel('resume-retry'), { type: 'socket.open' }]);
      if (state.offerer && (state.phase === Phase.CALL || state.phase === Phase.RECONNECTING)) {
        const restarted = beginIceRestart({ ...res.state, iceRestarts: state.phase === Phase.CALL ? 0 : res.state.iceRestarts });
        return out(restarted.state, [...res.effects, ...restarted.effects]);
      }
      return res;
    }

    case 'TOGGLE_MUTE': {
      if (!state.media.audio) return out(state);
      const muted = !state.media.muted;
      return out({ ...state, media: { ...state.media, muted } }, [{ type: 'media.setAudio', enabled: !muted }]);
    }
    case 'TOGGLE_CAMERA': {
      if (!state.media.video) return out(state);
      const cameraOff = !state.media.cameraOff;
      return out({ ...state, media: { ...state.media, cameraOff } }, [{ type: 'media.setVideo', enabled: !cameraOff }]);
    }
    case 'FLIP_CAMERA':
      if (!state.media.video || state.media.cameraOff || state.media.cameras < 2) return out(state);
      return out(state, [{ type: 'media.flip' }]);
    case 'TOGGLE_SELF_VIEW':
      return out({ ...state, selfViewHidden: !state.selfViewHidden });

    case 'CANCEL':
      if (![Phase.MEDIA, Phase.CONNECTING, Phase.WAITING].includes(state.phase)) return out(state);
      return finish(state, Phase.PIN, {}, { leave: true });
    case 'HANG_UP':
      if (!IN_ROOM.has(state.phase)) return out(state);
      return finish(state, Phase.ENDED, { problem: { code: 'HUNG_UP', title: 'Call ended', text: 'You hung up.', action: 'retry' } }, { leave: true });
    case 'PAGE_HIDE': // the tab is closing: leave at once so the other person is told now
      if (state.phase === Phase.PIN || state.phase === Phase.ENDED || state.phase === Phase.ERROR) return out(state);
      return finish(state, Phase.ENDED, { problem: { code: 'HUNG_UP', title: 'Call ended', text: 'You left the page.', action: 'retry' } }, { leave: true });
    default:
      return out(state);
  }
}
