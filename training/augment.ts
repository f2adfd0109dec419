// Random shift augmentation, done in JS on the batch's pixels with offsets from our PRNG.
import { IMAGE_HEIGHT, IMAGE_WIDTH, IMAGE_SIZE } from './datasets';
import type { Prng } from './prng';

/**
 * Shifts each of the `count` images in `images` (count * 784 floats) in place by a random offset in
 * [-maxShift, maxShift] in x and y, filling with zeros. Draws exactly two integers per image.
 */
export function randomShift(images: Float32Array, count: number, maxShift: number, rng: Prng): void {
  if (!(Number.isInteger(maxShift) && maxShift >= 0))
    throw new Error(`augment.shift must be an integer >= 0, got ${maxShift}`);
  if (maxShift === 0) return;
  const tmp = new Float32Array(IMAGE_SIZE);
  const span = 2 * maxShift + 1;
  for (let k = 0; k < count; k++) {
    const dx = rng.nextInt(span) - maxShift;
    const dy = rng.nextInt(span) - maxShift;
    if (dx === 0 && dy === 0) continue;
    const img = images.subarray(k * IMAGE_SIZE, (k + 1) * IMAGE_SIZE);
    tmp.fill(0);
    // Output pixel (y, x) takes input pixel (y - dy, x - dx) when that lies inside the image.
    const y0 = Math.max(0, dy);
    const y1 = Math.min(IMAGE_HEIGHT, IMAGE_HEIGHT + dy);
    const x0 = Math.max(0, dx);
    const x1 = Math.min(IMAGE_WIDTH, IMAGE_WIDTH + dx);
    for (let y = y0; y < y1; y++) {
      const src = (y - dy) * IMAGE_WIDTH - dx;
      const dst = y * IMAGE_WIDTH;
      for (let x = x0; x < x1; x++) tmp[dst + x] = img[src + x];
    }
    img.set(tmp);
  }
}
