// Camera and microphone: ideal (never exact) constraints so any device works, an audio-only
// fallback when the camera is missing or busy, mute/camera toggles and camera flipping.

import { describeMediaError } from './errors.js';

export const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
export const VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 }, facingMode: { ideal: 'user' } };

// Errors after which trying the microphone alone makes sense: the camera is the problem.
const CAMERA_PROBLEMS = new Set(['NotFoundError', 'DevicesNotFoundError', 'NotReadableError', 'TrackStartError', 'AbortError', 'OverconstrainedError']);

export function createMedia({ dispatch, selfVideo, log, mediaDevices = globalThis.navigator?.mediaDevices }) {
  let stream = null;
  let generation = 0; // a cancel or a new acquire makes older results stale
  let onVideoTrack = () => {};

  async function countCameras() {
    try {
      const devices = await mediaDevices.enumerateDevices();
      return devices.filter((d) => d.kind === 'videoinput').length;
    } catch {
      return 0;
    }
  }

  function show(s) {
    selfVideo.srcObject = s;
    selfVideo.play().catch(() => {}); // muted self-view may always autoplay; ignore a race with stop
  }

  function mirror(track) {
    const facing = track?.getSettings?.().facingMode;
    selfVideo.classList.toggle('mirrored', facing !== 'environment');
  }

  async function acquire() {
    const mine = ++generation;
    if (!mediaDevices?.getUserMedia) {
      dispatch({ type: 'MEDIA_FAILED', name: globalThis.isSecureContext === false ? 'InsecureContext' : 'NotSupported' });
      return;
    }
    let s = null;
    let videoProblem = null;
    try {
      s = await mediaDevices.getUserMedia({ audio: AUDIO, video: VIDEO });
    } catch (err) {
      log.warn('camera and microphone:', err?.name);
      if (!CAMERA_PROBLEMS.has(err?.name)) {
        if (mine === generation) dispatch({ type: 'MEDIA_FAILED', name: err?.name });
        return;
      }
      videoProblem = describeMediaError(err.name).code;
      try {
        s = await mediaDevices.getUserMedia({ audio: AUDIO });
      } catch (err2) {
        log.warn('microphone alone:', err2?.name);
        if (mine === generation) dispatch({ type: 'MEDIA_FAILED', name: err2?.name });
        return;
      }
    }
    if (mine !== generation) {
      s.getTracks().forEach((t) => t.stop());
      return;
    }
    stream = s;
    show(s);
    mirror(s.getVideoTracks()[0]);
    const cameras = await countCameras();
    if (mine !== generation) return;
    dispatch({ type: 'MEDIA_READY', audio: s.getAudioTracks().length > 0, video: s.getVideoTracks().length > 0, cameras, videoProblem });
  }

  function stop() {
    generation++;
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    selfVideo.srcObject = null;
  }

  const setEnabled = (kind, enabled) => {
    for (const t of stream?.getTracks() ?? []) if (t.kind === kind) t.enabled = enabled;
  };

  // flip switches to the next camera (front/back on phones) and hands the new track to the peer.
  async function flip() {
    const old = stream?.getVideoTracks()[0];
    if (!old) return;
    const cams = (await mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
    if (cams.length < 2) return;
    const current = old.getSettings().deviceId;
    const next = cams[(cams.findIndex((c) => c.deviceId === current) + 1) % cams.length];
    let fresh;
    try {
      // Some phones cannot open two cameras at once: stop the old one first.
      old.stop();
      fresh = (await mediaDevices.getUserMedia({ video: { ...VIDEO, facingMode: undefined, deviceId: { exact: next.deviceId } } })).getVideoTracks()[0];
    } catch (err) {
      log.warn('flip camera:', err?.name);
      fresh = (await mediaDevices.getUserMedia({ video: VIDEO }).catch(() => null))?.getVideoTracks()[0];
      if (!fresh) return;
    }
    stream.removeTrack(old);
    stream.addTrack(fresh);
    mirror(fresh);
    await onVideoTrack(fresh);
  }

  if (mediaDevices?.addEventListener) {
    mediaDevices.addEventListener('devicechange', async () => {
      if (stream) dispatch({ type: 'CAMERAS', count: await countCameras() });
    });
  }

  return {
    acquire,
    stop,
    flip,
    stream: () => stream,
    setAudio: (enabled) => setEnabled('audio', enabled),
    setVideo: (enabled) => setEnabled('video', enabled),
    onVideoTrackChange: (fn) => { onVideoTrack = fn; },
  };
}
