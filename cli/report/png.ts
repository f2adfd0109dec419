// The report's PNG: the chart's own SVG document rendered by resvg (@resvg/resvg-js, a prebuilt native binary),
// so the image and the page show the same drawing. Text uses the system's fonts (fontconfig's directories);
// `sans-serif` falls back to the first font found when the usual families (Arial, Helvetica) are missing.
import { Resvg, type ResvgRenderOptions } from '@resvg/resvg-js';

const OPTIONS: ResvgRenderOptions = {
  font: { loadSystemFonts: true },
  background: '#ffffff',
  // resvg warns on stderr that it picked a default font family; the report says so itself when none exists.
  logLevel: 'error',
};

/** The SVG document rendered at its own size: an 8-bit RGBA PNG. */
export function renderPng(svg: string): Buffer {
  return new Resvg(svg, OPTIONS).render().asPng();
}

/** Whether resvg finds a font to draw text with: without one, the PNG's curves are drawn but its text is not. */
export function canDrawText(): boolean {
  const probe =
    '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><text x="2" y="16" font-family="sans-serif" ' +
    'font-size="16">Ag</text></svg>';
  const pixels = new Resvg(probe, { ...OPTIONS, background: undefined }).render().pixels;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) return true;
  return false;
}
