// Entry point: wires the reducer to the effect modules and the page. Actions are processed one
// at a time in order, even when an effect dispatches while another action is being handled.

import { initialState, reduce, Phase } from './state.js';
import { randomPin } from './pin.js';
import { createLog, debugEnabled, redact } from './log.js';
import { createSignaling, socketURL } from './signaling.js';
import { createMedia } from './media.js';
import { createPeer } from './peer.js';
import { createStats } from './stats.js';
import { createTimers, runEffect } from './effects.js';
import { createView } from './view.js';
import { makeDraggable } from './drag.js';
import { traceparent } from './trace.js';
import { createTestPage } from './testpage.js';

const log = createLog(debugEnabled(location.search, globalThis.localStorage));
const view = createView(document);
const $ = (id) => document.getElementById(id);

let state = initialState();
const queue = [];
let busy = false;

function dispatch(action) {
  queue.push(action);
  if (busy) return;
  busy = true;
  try {
    while (queue.length) {
      const a = queue.shift();
      const prev = state;
      const { state: next, effects } = reduce(state, a);
      state = next;
      log.debug(a.type, a.msg ? `${a.msg.type}${a.msg.code ? ` ${a.msg.code}` : ''}` : '', JSON.stringify(redact(a)), `${prev.phase} \u2192 ${next.phase}`, effects.map((e) => e.type).join(' '));
      view.render(next, prev);
      for (const e of effects) {
        try {
          const r = runEffect(e, deps);
          if (r && typeof r.catch === 'function') r.catch((err) => log.warn(e.type, err));
        } catch (err) {
          log.warn(e.type, err);
        }
      }
    }
  } finally {
    busy = false;
  }
}

const remoteVideo = $('remote-video');
const playRemote = $('play-remote');
const media = createMedia({ dispatch, selfVideo: $('self-video'), log });
const peer = createPeer({ dispatch, media, remoteVideo, log, onRemotePlayBlocked: () => { playRemote.hidden = false; } });
const stats = createStats({ dispatch, peer, log });
const signaling = createSignaling({ url: socketURL(location), dispatch, log });
const timers = createTimers(dispatch);
const deps = { media, signaling, peer, stats, timers, log };
media.onVideoTrackChange((track) => peer.replaceVideoTrack(track));

// Page events become actions.
const on = (id, event, fn) => $(id).addEventListener(event, fn);
on('pin', 'input', (e) => dispatch({ type: 'PIN_CHANGED', value: e.target.value }));
// Each call attempt is one trace (its join and its leave); its support code is shown when it
// fails (docs/operations.md).
const callTrace = () => traceparent(crypto.getRandomValues(new Uint8Array(24)));
on('pin-form', 'submit', (e) => {
  e.preventDefault();
  dispatch({ type: 'SUBMIT', traceparent: callTrace() });
});
on('new-pin', 'click', () => {
  let pin = null;
  while (!pin) pin = randomPin(crypto.getRandomValues(new Uint8Array(12)));
  dispatch({ type: 'PIN_CHANGED', value: pin });
  $('join').focus();
});
on('busy-cancel', 'click', () => dispatch({ type: 'CANCEL' }));
on('overlay-cancel', 'click', () => dispatch({ type: 'CANCEL' }));
on('mute', 'click', () => dispatch({ type: 'TOGGLE_MUTE' }));
on('camera', 'click', () => dispatch({ type: 'TOGGLE_CAMERA' }));
on('flip', 'click', () => dispatch({ type: 'FLIP_CAMERA' }));
on('selfview', 'click', () => dispatch({ type: 'TOGGLE_SELF_VIEW' }));
on('hangup', 'click', () => dispatch({ type: 'HANG_UP' }));
on('again', 'click', () => dispatch({ type: 'AGAIN', traceparent: callTrace() }));
on('edit-pin', 'click', () => dispatch({ type: 'EDIT_PIN' }));
on('reload', 'click', () => location.reload());
on('play-remote', 'click', () => {
  playRemote.hidden = true;
  remoteVideo.play().catch(() => { playRemote.hidden = false; });
});
window.addEventListener('online', () => dispatch({ type: 'ONLINE' }));
window.addEventListener('pagehide', () => dispatch({ type: 'PAGE_HIDE' }));
makeDraggable($('self-view'), $('screen-stage'));

view.render(state, null);

// The connection test lives at /#test, reachable from the PIN screen; only while no call runs.
const testPage = createTestPage(document, { url: socketURL(location), log });
const route = () => {
  const on = location.hash === '#test' && state.phase === Phase.PIN;
  testPage.show(on);
  if (!on && state.phase === Phase.PIN) $('pin').focus({ preventScroll: true });
};
window.addEventListener('hashchange', route);
route();

// In debug mode, tests and developers can look inside.
if (log.enabled) {
  globalThis.tuturu = {
    state: () => state,
    pc: () => peer.current(),
    stats: () => stats.last(),
    dropSocket: () => signaling.drop(),
    dispatch,
  };
}
