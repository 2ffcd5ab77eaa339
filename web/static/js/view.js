// DOM rendering: the only module that changes the page. render(state, prev) shows the screen
// of the current phase, updates texts and controls, and moves focus when the screen changes
// so keyboard and screen-reader users land on what is new.

import { Phase } from './state.js';
import { formatPin } from './pin.js';
import { describeQuality, qualityWord, qualityFigures } from './quality.js';
import { supportText } from './errors.js';

// screenOf maps phases to the four screens of the page.
export function screenOf(phase) {
  switch (phase) {
    case Phase.PIN:
      return 'pin';
    case Phase.MEDIA:
    case Phase.CONNECTING:
      return 'busy';
    case Phase.WAITING:
    case Phase.NEGOTIATING:
    case Phase.CALL:
    case Phase.RECONNECTING:
      return 'stage';
    default:
      return 'end';
  }
}

// focusTarget says which element gets focus when entering a phase.
export function focusTarget(phase) {
  return {
    pin: 'pin',
    media: 'busy-title',
    connecting: 'busy-title',
    waiting: 'overlay-title',
    negotiating: 'overlay-title',
    call: 'stage-title',
    reconnecting: null, // stay where the caller is: the call screen does not change
    ended: 'end-title',
    error: 'end-title',
  }[phase];
}

// statusText is the line read out by screen readers (aria-live) and shown as a banner.
export function statusText(state) {
  if (state.notice) return state.notice.text;
  if (state.phase === Phase.CALL) return state.path === 'relay' ? 'Connected through the relay server.' : 'Connected.';
  return '';
}

// safetyText is the safety code as shown, or '' when there is none to compare: it needs the
// other person's description, so it is shown from negotiating on, never while waiting.
export function safetyText(state) {
  const withPeer = state.phase === Phase.NEGOTIATING || state.phase === Phase.CALL || state.phase === Phase.RECONNECTING;
  return withPeer && Array.isArray(state.safety) ? state.safety.join(' ') : '';
}

export function createView(doc) {
  const $ = (id) => doc.getElementById(id);
  const el = {
    status: $('status'),
    screens: { pin: $('screen-pin'), busy: $('screen-busy'), stage: $('screen-stage'), end: $('screen-end') },
    pin: $('pin'),
    pinError: $('pin-error'),
    pinSupport: $('pin-support'),
    busyTitle: $('busy-title'),
    busyText: $('busy-text'),
    overlay: $('stage-overlay'),
    overlayTitle: $('overlay-title'),
    overlayText: $('overlay-text'),
    overlayPin: $('overlay-pin'),
    overlayCancel: $('overlay-cancel'),
    stageTitle: $('stage-title'),
    badge: $('path-badge'),
    quality: $('quality'),
    qualityWord: $('quality-word'),
    qualityDetail: $('quality-detail'),
    safety: $('safety'),
    safetyWords: $('safety-words'),
    selfView: $('self-view'),
    controls: $('controls'),
    mute: $('mute'),
    camera: $('camera'),
    flip: $('flip'),
    selfToggle: $('selfview'),
    endScreen: $('screen-end'),
    endTitle: $('end-title'),
    endText: $('end-text'),
    endSupport: $('end-support'),
    again: $('again'),
    editPin: $('edit-pin'),
    reload: $('reload'),
  };

  const setText = (node, text) => {
    if (node.textContent !== text) node.textContent = text;
  };
  const show = (node, visible) => {
    if (node.hidden === visible) node.hidden = !visible;
  };

  // renderSupport shows a problem's support code, or hides the line when it has none.
  function renderSupport(node, problem) {
    const code = problem?.supportCode ?? '';
    show(node, !!code);
    setText(node, supportText(code));
    node.dataset.code = code;
  }

  function renderPin(s) {
    if (el.pin.value !== s.pin) el.pin.value = s.pin;
    const err = s.pinError;
    show(el.pinError, !!err);
    setText(el.pinError, err ? err.text : '');
    el.pinError.dataset.code = err ? err.code : '';
    renderSupport(el.pinSupport, err);
    el.pin.setAttribute('aria-invalid', err ? 'true' : 'false');
  }

  function renderBusy(s) {
    if (s.phase === Phase.MEDIA) {
      setText(el.busyTitle, 'Starting your camera');
      setText(el.busyText, 'Your browser may ask to use your camera and microphone.');
    } else {
      setText(el.busyTitle, 'Joining the call');
      setText(el.busyText, `Connecting to the server with PIN ${formatPin(s.pin)}.`);
    }
  }

  function renderStage(s) {
    const waiting = s.phase === Phase.WAITING;
    const negotiating = s.phase === Phase.NEGOTIATING;
    show(el.overlay, waiting || negotiating);
    if (waiting) {
      setText(el.overlayTitle, 'Waiting for the other person');
      setText(el.overlayText, 'Tell them this PIN:');
      setText(el.overlayPin, formatPin(s.pin));
      show(el.overlayPin, true);
      show(el.overlayCancel, true);
    } else if (negotiating) {
      setText(el.overlayTitle, 'Connecting to the other person');
      setText(el.overlayText, 'This usually takes a few seconds.');
      show(el.overlayPin, false);
      show(el.overlayCancel, false);
    }
    setText(el.stageTitle, `In a call with PIN ${formatPin(s.pin)}`);
    show(el.controls, !waiting);

    const m = s.media;
    el.mute.disabled = !m.audio;
    el.mute.setAttribute('aria-pressed', String(m.muted));
    setText(el.mute, m.muted ? 'Unmute' : 'Mute');
    el.camera.disabled = !m.video;
    el.camera.setAttribute('aria-pressed', String(m.cameraOff));
    setText(el.camera, !m.video ? 'No camera' : m.cameraOff ? 'Camera on' : 'Camera off');
    show(el.flip, m.video && m.cameras >= 2);
    el.flip.disabled = m.cameraOff;
    show(el.selfToggle, m.video);
    el.selfToggle.setAttribute('aria-pressed', String(s.selfViewHidden));
    setText(el.selfToggle, s.selfViewHidden ? 'Show me' : 'Hide me');
    show(el.selfView, m.video && !s.selfViewHidden);
    el.selfView.classList.toggle('camera-off', m.cameraOff);

    const inCall = s.phase === Phase.CALL || s.phase === Phase.RECONNECTING;
    show(el.badge, inCall && !!s.path);
    el.badge.dataset.path = s.path ?? '';
    setText(el.badge, s.path === 'relay' ? 'Relayed' : s.path === 'direct' ? 'Direct' : '');
    el.badge.title = s.path === 'relay' ? 'Media goes through the relay server (encrypted end to end).' : 'Media goes directly between your devices.';
    show(el.quality, inCall && !!s.quality.level);
    el.quality.dataset.level = s.quality.level ?? '';
    setText(el.qualityWord, qualityWord(s.quality));
    const figures = qualityFigures(s.quality);
    setText(el.qualityDetail, figures ? `connection: ${figures}` : 'connection');
    el.quality.title = describeQuality(s.quality);

    const code = safetyText(s);
    show(el.safety, !!code);
    renderSafetyWords(code);
  }

  // renderSafetyWords shows the code in groups of three words that never break apart, so six
  // words read as two lines of three on any width.
  function renderSafetyWords(code) {
    if (el.safetyWords.dataset.code === code) return;
    el.safetyWords.dataset.code = code;
    const words = code ? code.split(' ') : [];
    const parts = [];
    for (let i = 0; i < words.length; i += 3) {
      const group = doc.createElement('span');
      group.className = 'safety-group';
      group.textContent = words.slice(i, i + 3).join(' ');
      if (parts.length) parts.push(' ');
      parts.push(group);
    }
    el.safetyWords.replaceChildren(...parts);
  }

  function renderEnd(s) {
    const p = s.problem ?? { code: 'ENDED', title: 'Call ended', text: '', action: 'retry' };
    setText(el.endTitle, p.title);
    setText(el.endText, p.text);
    renderSupport(el.endSupport, p);
    el.endScreen.dataset.code = p.code;
    el.endScreen.classList.toggle('is-error', s.phase === Phase.ERROR);
    show(el.again, p.action === 'retry');
    setText(el.again, s.phase === Phase.ERROR ? 'Try again' : 'Call again');
    show(el.editPin, p.action !== 'reload');
    el.editPin.className = p.action === 'edit-pin' ? 'primary' : 'secondary';
    show(el.reload, p.action === 'reload');
  }

  function render(s, prev) {
    doc.body.dataset.phase = s.phase;
    doc.body.dataset.socket = s.socket;
    const screen = screenOf(s.phase);
    for (const [name, node] of Object.entries(el.screens)) show(node, name === screen);

    const status = statusText(s);
    show(el.status, !!status);
    setText(el.status, status);
    el.status.classList.toggle('quiet', !s.notice);
    el.status.dataset.code = s.notice?.code ?? '';

    if (screen === 'pin') renderPin(s);
    if (screen === 'busy') renderBusy(s);
    if (screen === 'stage') renderStage(s);
    if (screen === 'end') renderEnd(s);

    if (!prev || prev.phase !== s.phase) {
      const id = focusTarget(s.phase);
      if (id) doc.getElementById(id)?.focus({ preventScroll: true });
    } else if (screen === 'pin' && s.pinError && s.pinError !== prev.pinError) {
      el.pin.focus();
    }
  }

  return { render, el };
}
