// A tiny RGB rasterizer (lines, rectangles, dots, a 3x5 pixel font) and a PNG encoder on node:zlib:
// enough to draw the report's curves without a canvas package.
import { deflateSync } from 'node:zlib';

export type Rgb = readonly [number, number, number];

export function hexColor(hex: string): Rgb {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) throw new Error(`png: not a #rrggbb color: ${hex}`);
  return [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)];
}

// 3x5 glyphs, rows top to bottom, '1' = ink. Lower case is drawn as upper case.
const GLYPHS: Record<string, string> = {
  '0': '111101101101111',
  '1': '010110010010111',
  '2': '111001111100111',
  '3': '111001111001111',
  '4': '101101111001001',
  '5': '111100111001111',
  '6': '111100111101111',
  '7': '111001010010010',
  '8': '111101111101111',
  '9': '111101111001111',
  A: '010101111101101',
  B: '110101110101110',
  C: '011100100100011',
  D: '110101101101110',
  E: '111100110100111',
  F: '111100110100100',
  G: '011100101101011',
  H: '101101111101101',
  I: '111010010010111',
  J: '001001001101010',
  K: '101101110101101',
  L: '100100100100111',
  M: '101111111101101',
  N: '110101101101101',
  O: '010101101101010',
  P: '110101110100100',
  Q: '010101101110011',
  R: '110101110101101',
  S: '011100010001110',
  T: '111010010010010',
  U: '101101101101111',
  V: '101101101101010',
  W: '101101111111101',
  X: '101101010101101',
  Y: '101101010010010',
  Z: '111001010100111',
  '.': '000000000000010',
  ',': '000000000010100',
  '-': '000000111000000',
  '+': '000010111010000',
  ':': '000010000010000',
  '/': '001001010100100',
  '(': '010100100100010',
  ')': '010001001001010',
  '%': '101001010100101',
  _: '000000000000111',
  '=': '000111000111000',
  '?': '111001011000010',
  ' ': '000000000000000',
};

export class Raster {
  readonly data: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
    background: Rgb = [255, 255, 255],
  ) {
    if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0))
      throw new Error(`png: bad size ${width}x${height}`);
    this.data = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.data.set(background, i * 3);
  }

  /** Blends `color` over pixel (x, y) with opacity `alpha` in [0, 1]. */
  plot(x: number, y: number, color: Rgb, alpha = 1): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height || !(alpha > 0)) return;
    const i = (y * this.width + x) * 3;
    const a = Math.min(1, alpha);
    for (let c = 0; c < 3; c++) this.data[i + c] = Math.round(this.data[i + c] * (1 - a) + color[c] * a);
  }

  rect(x: number, y: number, w: number, h: number, color: Rgb): void {
    for (let yy = Math.round(y); yy < Math.round(y + h); yy++)
      for (let xx = Math.round(x); xx < Math.round(x + w); xx++) this.plot(xx, yy, color);
  }

  /** A line of `width` pixels, anti-aliased by distance to the segment. */
  line(x0: number, y0: number, x1: number, y1: number, color: Rgb, width = 1.5): void {
    const r = width / 2;
    const minX = Math.floor(Math.min(x0, x1) - r - 1);
    const maxX = Math.ceil(Math.max(x0, x1) + r + 1);
    const minY = Math.floor(Math.min(y0, y1) - r - 1);
    const maxY = Math.ceil(Math.max(y0, y1) + r + 1);
    const dx = x1 - x0;
    const dy = y1 - y0;
    const len2 = dx * dx + dy * dy;
    for (let y = Math.max(0, minY); y <= Math.min(this.height - 1, maxY); y++) {
      for (let x = Math.max(0, minX); x <= Math.min(this.width - 1, maxX); x++) {
        const t = len2 > 0 ? Math.max(0, Math.min(1, ((x - x0) * dx + (y - y0) * dy) / len2)) : 0;
        const d = Math.hypot(x - (x0 + t * dx), y - (y0 + t * dy));
        const cover = Math.max(0, Math.min(1, r + 0.5 - d));
        if (cover > 0) this.plot(x, y, color, cover);
      }
    }
  }

  polyline(points: Array<[number, number]>, color: Rgb, width = 1.5): void {
    for (let i = 1; i < points.length; i++)
      this.line(points[i - 1][0], points[i - 1][1], points[i][0], points[i][1], color, width);
    if (points.length === 1) this.dot(points[0][0], points[0][1], width, color);
  }

  vline(x: number, y0: number, y1: number, color: Rgb, dash = 0, width = 1): void {
    const xi = Math.round(x);
    for (let y = Math.round(Math.min(y0, y1)); y <= Math.round(Math.max(y0, y1)); y++) {
      if (dash > 0 && Math.floor((y - y0) / dash) % 2 === 1) continue;
      for (let w = 0; w < width; w++) this.plot(xi + w, y, color);
    }
  }

  hline(x0: number, x1: number, y: number, color: Rgb): void {
    const yi = Math.round(y);
    for (let x = Math.round(Math.min(x0, x1)); x <= Math.round(Math.max(x0, x1)); x++) this.plot(x, yi, color);
  }

  dot(cx: number, cy: number, r: number, color: Rgb): void {
    for (let y = Math.floor(cy - r - 1); y <= Math.ceil(cy + r + 1); y++)
      for (let x = Math.floor(cx - r - 1); x <= Math.ceil(cx + r + 1); x++) {
        const cover = Math.max(0, Math.min(1, r + 0.5 - Math.hypot(x - cx, y - cy)));
        if (cover > 0) this.plot(x, y, color, cover);
      }
  }

  /** Text in the 3x5 font at `scale` pixels per font pixel; (x, y) is the top left. Returns the width drawn. */
  text(x: number, y: number, s: string, color: Rgb, scale = 2): number {
    let cx = Math.round(x);
    for (const ch of s.toUpperCase()) {
      const g = GLYPHS[ch] ?? GLYPHS['?'];
      for (let row = 0; row < 5; row++)
        for (let col = 0; col < 3; col++)
          if (g[row * 3 + col] === '1') this.rect(cx + col * scale, Math.round(y) + row * scale, scale, scale, color);
      cx += 4 * scale;
    }
    return cx - Math.round(x);
  }

  static textWidth(s: string, scale = 2): number {
    return s.length * 4 * scale;
  }
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(...parts: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const p of parts) for (let i = 0; i < p.length; i++) c = CRC_TABLE[(c ^ p[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, body: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(head.subarray(4), body), 0);
  return Buffer.concat([head, body, crc]);
}

/** An 8-bit RGB PNG: every row with filter 0 (none), zlib-compressed in one IDAT. */
export function encodePng(r: Raster): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(r.width, 0);
  ihdr.writeUInt32BE(r.height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // color type: truecolor
  ihdr[10] = 0; // deflate
  ihdr[11] = 0; // adaptive filtering (filter type per row)
  ihdr[12] = 0; // no interlace
  const stride = r.width * 3;
  const raw = Buffer.alloc((stride + 1) * r.height);
  for (let y = 0; y < r.height; y++) {
    raw[y * (stride + 1)] = 0;
    raw.set(r.data.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  return Buffer.concat([
    PNG_SIGNATURE,
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', new Uint8Array(0)),
  ]);
}
