// Polls getStats once a second while in a call and reports a sample (path, RTT, bitrate, loss)
// as a STATS action; the reducer smooths it (quality.js).

import { sampleOf } from './quality.js';

const EVERY_MS = 1000;

export function createStats({ dispatch, peer, log }) {
  let timer = null;
  let totals = null;
  let last = null; // the last raw totals, for tests and debugging (framesDecoded)

  async function poll() {
    const pc = peer.current();
    if (!pc) return;
    try {
      const report = await pc.getStats();
      const r = sampleOf(totals, Array.from(report.values()));
      totals = r.totals;
      last = r.totals;
      dispatch({ type: 'STATS', sample: r.sample });
    } catch (err) {
      log.warn('getStats', err?.name);
    }
  }

  return {
    start() {
      if (timer) return;
      totals = null;
      poll();
      timer = setInterval(poll, EVERY_MS);
    },
    stop() {
      clearInterval(timer);
      timer = null;
      totals = null;
    },
    last: () => last,
  };
}
