// runEffect carries out one effect the reducer asked for, with the effect modules in `deps`
// (media, signaling, peer, stats, timers). It holds no state of its own.

export function createTimers(dispatch, clock = globalThis) {
  const active = new Map();
  return {
    start(name, ms) {
      clock.clearTimeout(active.get(name));
      active.set(name, clock.setTimeout(() => {
        active.delete(name);
        dispatch({ type: 'TIMER', name });
      }, ms));
    },
    cancel(name) {
      clock.clearTimeout(active.get(name));
      active.delete(name);
    },
    cancelAll() {
      for (const id of active.values()) clock.clearTimeout(id);
      active.clear();
    },
    active: () => [...active.keys()],
  };
}

export function runEffect(e, { media, signaling, peer, stats, timers, log }) {
  switch (e.type) {
    case 'media.acquire': return media.acquire();
    case 'media.stop': return media.stop();
    case 'media.setAudio': return media.setAudio(e.enabled);
    case 'media.setVideo': return media.setVideo(e.enabled);
    case 'media.flip': return media.flip();
    case 'socket.open': return signaling.open();
    case 'socket.send': return signaling.send(e.msg);
    case 'socket.flush': return signaling.flush();
    case 'socket.refresh': return signaling.refresh(e.token);
    case 'socket.close': return signaling.close();
    case 'pc.create': return peer.create(e.session);
    case 'pc.offer': return peer.offer();
    case 'pc.restartIce': return peer.restartIce();
    case 'pc.answer': return peer.answer(e.description);
    case 'pc.remote': return peer.remote(e.description);
    case 'pc.candidate': return peer.candidate(e.candidate);
    case 'pc.configure': return peer.configure(e.session);
    case 'pc.close': return peer.close();
    case 'stats.start': return stats.start();
    case 'stats.stop': return stats.stop();
    case 'timer.start': return timers.start(e.name, e.ms);
    case 'timer.cancel': return timers.cancel(e.name);
    case 'timer.cancelAll': return timers.cancelAll();
    default:
      log.warn('unknown effect', e.type);
      return undefined;
  }
}
