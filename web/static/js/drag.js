// Makes the self-view draggable with a pointer (mouse, touch, pen) and movable with the arrow
// keys when focused, kept inside its container. It moves by CSS transform through the CSSOM,
// which a strict Content-Security-Policy allows (no inline style attributes).

const KEY_STEP = 24;

// clampOffset keeps a box of size (w, h) at offset (x, y) inside a container of (cw, ch),
// where offset (0, 0) is the box's resting corner (bottom right).
export function clampOffset(x, y, w, h, cw, ch) {
  const minX = -(cw - w);
  const minY = -(ch - h);
  return { x: Math.min(0, Math.max(minX, x)), y: Math.min(0, Math.max(minY, y)) };
}

export function makeDraggable(el, container) {
  let x = 0;
  let y = 0;
  let start = null;

  const apply = () => {
    const c = clampOffset(x, y, el.offsetWidth, el.offsetHeight, container.clientWidth - 16, container.clientHeight - 16);
    x = c.x;
    y = c.y;
    el.style.transform = `translate(${x}px, ${y}px)`;
  };

  el.addEventListener('pointerdown', (e) => {
    if (e.target.closest('button')) return;
    start = { px: e.clientX, py: e.clientY, x, y };
    el.setPointerCapture(e.pointerId);
    el.classList.add('dragging');
  });
  el.addEventListener('pointermove', (e) => {
    if (!start) return;
    x = start.x + e.clientX - start.px;
    y = start.y + e.clientY - start.py;
    apply();
  });
  const end = () => {
    start = null;
    el.classList.remove('dragging');
  };
  el.addEventListener('pointerup', end);
  el.addEventListener('pointercancel', end);
  el.addEventListener('keydown', (e) => {
    const d = { ArrowLeft: [-KEY_STEP, 0], ArrowRight: [KEY_STEP, 0], ArrowUp: [0, -KEY_STEP], ArrowDown: [0, KEY_STEP] }[e.key];
    if (!d) return;
    e.preventDefault();
    x += d[0];
    y += d[1];
    apply();
  });
  globalThis.addEventListener?.('resize', apply);
}
