// The connection test's screen (/#test): camera and microphone preview with a level meter, then
// the network checks of nettest.js, each result in plain words as it comes in. It touches only
// its own section of the page, and stops the camera, the meter and the checks' socket when the
// caller leaves it.

import { describeMediaError } from './errors.js';
import { describeResults, runChecks } from './nettest.js';

// The meter is read ten times a second: smooth enough to watch, cheap enough to leave running.
const METER_EVERY_MS = 100;

// levelOf is the loudness of one block of samples (RMS), scaled so speech fills the meter.
export function levelOf(samples) {
  let sum = 0;
  for (const v of samples) sum += v * v;
  return Math.min(1, Math.sqrt(sum / Math.max(1, samples.length)) * 4);
}

export function createTestPage(doc, { url, log }) {
  const $ = (id) => doc.getElementById(id);
  const el = {
    screen: $('screen-test'),
    title: $('test-title'),
    video: $('test-video'),
    meter: $('test-meter'),
    summary: $('test-summary'),
    results: $('test-results'),
    start: $('test-start'),
  };
  let stream = null;
  let audioCtx = null;
  let meterTimer = null;
  let running = false;
  let results = {};

  function render() {
    const { items, summary } = describeResults(results);
    const rows = items.map((it) => {
      const li = doc.createElement('li');
      li.dataset.id = it.id;
      li.dataset.status = it.status;
      const title = doc.createElement('strong');
      title.textContent = `${it.title}: `;
      li.append(title, it.text);
      return li;
    });
    el.results.replaceChildren(...rows);
    el.summary.textContent = running ? 'Testing\u2026 this takes up to half a minute.' : (items.length ? summary : '');
  }

  async function startMedia() {
    const md = globalThis.navigator?.mediaDevices;
    if (!md?.getUserMedia) return { status: 'fail', text: describeMediaError('NotSupported').text };
    try {
      stream = await md.getUserMedia({ audio: true, video: true });
    } catch (err) {
      try {
        stream = await md.getUserMedia({ audio: true }); // no camera: the microphone alone
      } catch {
        return { status: 'fail', text: describeMediaError(err?.name).text };
      }
    }
    el.video.srcObject = stream;
    startMeter(stream);
    return { status: 'ok', audio: stream.getAudioTracks().length > 0, video: stream.getVideoTracks().length > 0 };
  }

  function startMeter(s) {
    const Ctx = globalThis.AudioContext ?? globalThis.webkitAudioContext;
    if (!Ctx || !s.getAudioTracks().length) return;
    audioCtx = new Ctx();
    const analyser = audioCtx.createAnalyser();
    analyser.fftSize = 1024;
    audioCtx.createMediaStreamSource(s).connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    let peak = 0;
    meterTimer = setInterval(() => {
      analyser.getFloatTimeDomainData(buf);
      const level = levelOf(buf);
      peak = Math.max(peak, level);
      el.meter.value = level;
      el.meter.dataset.peak = peak.toFixed(3);
    }, METER_EVERY_MS);
  }

  // stop ends the preview and the meter; the checks end by themselves within their bounds.
  function stop() {
    clearInterval(meterTimer);
    meterTimer = null;
    audioCtx?.close().catch(() => {});
    audioCtx = null;
    for (const t of stream?.getTracks() ?? []) t.stop();
    stream = null;
    el.video.srcObject = null;
  }

  async function run() {
    if (running) return;
    stop();
    running = true;
    results = {};
    el.screen.dataset.state = 'running';
    el.start.disabled = true;
    render();
    try {
      results.media = await startMedia();
      render();
      await runChecks({
        url,
        WebSocketImpl: globalThis.WebSocket,
        RTCPeerConnectionImpl: globalThis.RTCPeerConnection,
        random: (n) => crypto.getRandomValues(new Uint8Array(n)),
        onResult: (name, value) => {
          results[name] = value;
          render();
        },
      });
    } catch (err) {
      log.warn('connection test', err);
      results.error = 'The connection test stopped unexpectedly. Reload the page and try again.';
    } finally {
      running = false;
      el.start.disabled = false;
      el.start.textContent = 'Test again';
      el.screen.dataset.state = 'done';
      render();
    }
  }

  // show enters or leaves the test screen.
  function show(on) {
    el.screen.hidden = !on;
    doc.body.dataset.mode = on ? 'test' : '';
    if (on) el.title.focus({ preventScroll: true });
    else stop();
  }

  el.start.addEventListener('click', () => { run(); });
  return { show, run, stop };
}
