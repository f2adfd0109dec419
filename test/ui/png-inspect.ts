// Reads a PNG far enough to tell a real picture from a blank or broken one: chunk CRCs, header, size, and the
// colours of its pixels (8-bit greyscale, RGB or RGBA, not interlaced: what Chromium and resvg write).
import { crc32, inflateSync } from 'node:zlib';

export interface DecodedPng {
  width: number;
  height: number;
  bitDepth: number;
  /** PNG colour type: 0 grey, 2 RGB, 4 grey + alpha, 6 RGBA. */
  colorType: number;
  /** RGB, 3 bytes a pixel, row by row, filters undone, any alpha composited over white. */
  pixels: Buffer;
}

export interface PngFacts {
  width: number;
  height: number;
  /** Distinct colours among the pixels. */
  colors: number;
  /** Share of the pixels that have the most common colour (1 = a single flat colour). */
  dominantShare: number;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

/** The predictor of PNG filter `filter` (PNG spec, section 9) from left `a`, up `b` and up-left `c`. */
function predict(filter: number, a: number, b: number, c: number, row: number): number {
  switch (filter) {
    case 0:
      return 0;
    case 1:
      return a;
    case 2:
      return b;
    case 3:
      return (a + b) >> 1;
    case 4: {
      const p = a + b - c;
      const pa = Math.abs(p - a);
      const pb = Math.abs(p - b);
      const pc = Math.abs(p - c);
      return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
    default:
      throw new Error(`bad PNG filter ${filter} in row ${row}`);
  }
}

export function decodePng(png: Buffer): DecodedPng {
  if (png.length < 33 || !png.subarray(0, 8).equals(SIGNATURE)) throw new Error('not a PNG (bad signature)');
  let width = 0;
  let height = 0;
  let bitDepth = 0;
  let colorType = -1;
  let channels = 0;
  let ended = false;
  const idat: Buffer[] = [];
  for (let at = 8; at < png.length && !ended;) {
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    const data = png.subarray(at + 8, at + 8 + length);
    if (png.readUInt32BE(at + 8 + length) !== crc32(png.subarray(at + 4, at + 8 + length)))
      throw new Error(`PNG chunk ${type} at byte ${at} has a bad CRC`);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      bitDepth = data[8];
      colorType = data[9];
      channels = CHANNELS[colorType] ?? 0;
      if (bitDepth !== 8 || !channels || data[12] !== 0)
        throw new Error(`unsupported PNG: bit depth ${bitDepth}, colour type ${colorType}, interlace ${data[12]}`);
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') ended = true;
    at += 12 + length;
  }
  if (!width || !height) throw new Error('PNG without IHDR');
  if (!ended) throw new Error('PNG without IEND (truncated)');
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  if (raw.length !== height * (stride + 1))
    throw new Error(`PNG data is ${raw.length} bytes, expected ${height * (stride + 1)}`);

  const samples = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = samples.subarray(y * stride, (y + 1) * stride);
    const up = y > 0 ? samples.subarray((y - 1) * stride, y * stride) : Buffer.alloc(stride);
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? row[x - channels] : 0;
      const c = x >= channels ? up[x - channels] : 0;
      row[x] = (src[x] + predict(filter, a, up[x], c, y)) & 0xff;
    }
  }
  const pixels = Buffer.alloc(width * height * 3);
  const grey = channels < 3;
  const alpha = channels === 2 || channels === 4;
  for (let i = 0, o = 0; i < samples.length; i += channels, o += 3) {
    const al = alpha ? samples[i + channels - 1] / 255 : 1;
    for (let k = 0; k < 3; k++) {
      const v = samples[i + (grey ? 0 : k)];
      pixels[o + k] = Math.round(v * al + 255 * (1 - al));
    }
  }
  return { width, height, bitDepth, colorType, pixels };
}

/** How many pixels have exactly the colour `#rrggbb`. */
export function countColor(img: DecodedPng, hex: string): number {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) throw new Error(`not a #rrggbb colour: ${hex}`);
  const [r, g, b] = [m[1], m[2], m[3]].map((h) => parseInt(h, 16));
  let n = 0;
  for (let i = 0; i < img.pixels.length; i += 3)
    if (img.pixels[i] === r && img.pixels[i + 1] === g && img.pixels[i + 2] === b) n++;
  return n;
}

export function inspectPng(png: Buffer): PngFacts {
  const { width, height, pixels } = decodePng(png);
  const counts = new Map<number, number>();
  for (let i = 0; i < pixels.length; i += 3) {
    const key = (pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2];
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  let dominant = 0;
  for (const n of counts.values()) dominant = Math.max(dominant, n);
  return { width, height, colors: counts.size, dominantShare: dominant / (width * height) };
}
