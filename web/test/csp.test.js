// The client must run under the strict Content-Security-Policy the gateway sends
// (script-src 'self'; style-src 'self'): no inline script, style or handler, no eval, and no
// markup built from strings. This reads the shipped files as they are served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../static/', import.meta.url).pathname;
const html = readFileSync(join(root, 'index.html'), 'utf8');
const scripts = readdirSync(join(root, 'js')).filter((f) => f.endsWith('.js'));

test('index.html has no inline script, style or event handler', () => {
  for (const m of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
    assert.match(m[1], /\bsrc=/, 'every script is a file');
    assert.equal(m[2].trim(), '', 'no inline script body');
  }
  assert.doesNotMatch(html, /<style\b/i, 'no <style> element');
  assert.doesNotMatch(html, /\sstyle\s*=/i, 'no style attribute');
  assert.doesNotMatch(html, /\son[a-z]+\s*=/i, 'no inline event handler');
  assert.doesNotMatch(html, /javascript:/i);
});

test('index.html is accessible by construction', () => {
  assert.match(html, /<html lang="en">/);
  assert.match(html, /<label for="pin">/);
  assert.match(html, /id="pin"[^>]*inputmode="numeric"/);
  assert.match(html, /autocomplete="one-time-code"/);
  assert.match(html, /role="status" aria-live="polite"/);
  assert.match(html, /id="self-video"[^>]*playsinline muted/);
  assert.match(html, /id="remote-video"[^>]*playsinline/);
  assert.match(html, /id="safety"[^>]*aria-labelledby="safety-title"/, 'the safety code is a labelled region');
  assert.match(html, /id="safety-hint"[^>]*>Compare these words with the other person: if they match, nobody is listening in\.</);
  // Every button has text or a label.
  for (const m of html.matchAll(/<button\b([^>]*)>([\s\S]*?)<\/button>/g)) {
    assert.ok(m[2].trim() || /aria-label=/.test(m[1]), `button ${m[1]} has a name`);
  }
});

test('scripts use no eval, string-built markup or inline styles', () => {
  for (const f of scripts) {
    const src = readFileSync(join(root, 'js', f), 'utf8');
    assert.doesNotMatch(src, /\beval\s*\(|new Function\s*\(/, `${f}: eval`);
    assert.doesNotMatch(src, /\.innerHTML\s*=|insertAdjacentHTML|document\.write/, `${f}: markup from strings`);
    assert.doesNotMatch(src, /setAttribute\(\s*['"]style['"]|\.style\.cssText/, `${f}: style attribute`);
  }
});

test('every module imports only relative files (no build step, no CDN)', () => {
  for (const f of scripts) {
    const src = readFileSync(join(root, 'js', f), 'utf8');
    for (const m of src.matchAll(/^import .* from '([^']+)';$/gm)) {
      assert.match(m[1], /^\.\/[a-z]+\.js$/, `${f} imports ${m[1]}`);
    }
  }
});
