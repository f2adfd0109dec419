;; Adam's update of numerics 2 (training/optimizers.ts) over n float32s, the arrays at byte addresses g, m, v, w, o,
;; mo, vo of the module's memory: m' = b1*m + c1*g, v' = b2*v + (c2*g)*g, o = w - (s*m') / (sqrt(v') + eps), every
;; operation in float64 and in that order, m' into mo, v' into vo and o as float32 (rounded to nearest); mo and vo
;; may be m and v themselves (each value is read before its own is stored). The same
;; IEEE operations as the JavaScript loop, so the same bits; two doubles at a time with SIMD (four floats a step,
;; the rest one at a time). Built into training/wasm/adam-module.ts by scripts/build-wasm.js.
(module
  ;; Shared: a checkpoint's persist thread reads the arrays a snapshot lends it in place (training/wasm/adam.ts).
  (memory (export "memory") 1 65535 shared)
  (func (export "adam")
    (param $g i32) (param $m i32) (param $v i32) (param $w i32) (param $o i32) (param $mo i32) (param $vo i32)
    (param $n i32)
    (param $b1 f64) (param $c1 f64) (param $b2 f64) (param $c2 f64) (param $s f64) (param $eps f64)
    (local $end i32) (local $vend i32)
    (local $B1 v128) (local $C1 v128) (local $B2 v128) (local $C2 v128) (local $S v128) (local $E v128)
    (local $q v128) (local $g0 v128) (local $g1 v128)
    (local $m0 v128) (local $m1 v128) (local $v0 v128) (local $v1 v128) (local $w0 v128) (local $w1 v128)
    (local $gs f64) (local $ms f64) (local $vs f64)
    (local.set $B1 (f64x2.splat (local.get $b1)))
    (local.set $C1 (f64x2.splat (local.get $c1)))
    (local.set $B2 (f64x2.splat (local.get $b2)))
    (local.set $C2 (f64x2.splat (local.get $c2)))
    (local.set $S (f64x2.splat (local.get $s)))
    (local.set $E (f64x2.splat (local.get $eps)))
    (local.set $end (i32.add (local.get $g) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $vend (i32.add (local.get $g) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $simd_done
      (loop $simd
        (br_if $simd_done (i32.ge_u (local.get $g) (local.get $vend)))
        ;; g: floats 0-1 and 2-3 as doubles (the high half moved down by a shuffle)
        (local.set $q (v128.load (local.get $g)))
        (local.set $g0 (f64x2.promote_low_f32x4 (local.get $q)))
        (local.set $g1 (f64x2.promote_low_f32x4
          (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $q) (local.get $q))))
        ;; m' = b1*m + c1*g
        (local.set $q (v128.load (local.get $m)))
        (local.set $m0 (f64x2.add
          (f64x2.mul (local.get $B1) (f64x2.promote_low_f32x4 (local.get $q)))
          (f64x2.mul (local.get $C1) (local.get $g0))))
        (local.set $m1 (f64x2.add
          (f64x2.mul (local.get $B1) (f64x2.promote_low_f32x4
            (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $q) (local.get $q))))
          (f64x2.mul (local.get $C1) (local.get $g1))))
        (v128.store (local.get $mo) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
          (f32x4.demote_f64x2_zero (local.get $m0)) (f32x4.demote_f64x2_zero (local.get $m1))))
        ;; v' = b2*v + (c2*g)*g
        (local.set $q (v128.load (local.get $v)))
        (local.set $v0 (f64x2.add
          (f64x2.mul (local.get $B2) (f64x2.promote_low_f32x4 (local.get $q)))
          (f64x2.mul (f64x2.mul (local.get $C2) (local.get $g0)) (local.get $g0))))
        (local.set $v1 (f64x2.add
          (f64x2.mul (local.get $B2) (f64x2.promote_low_f32x4
            (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $q) (local.get $q))))
          (f64x2.mul (f64x2.mul (local.get $C2) (local.get $g1)) (local.get $g1))))
        (v128.store (local.get $vo) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
          (f32x4.demote_f64x2_zero (local.get $v0)) (f32x4.demote_f64x2_zero (local.get $v1))))
        ;; o = w - (s*m') / (sqrt(v') + eps)
        (local.set $q (v128.load (local.get $w)))
        (local.set $w0 (f64x2.sub (f64x2.promote_low_f32x4 (local.get $q))
          (f64x2.div (f64x2.mul (local.get $S) (local.get $m0))
            (f64x2.add (f64x2.sqrt (local.get $v0)) (local.get $E)))))
        (local.set $w1 (f64x2.sub
          (f64x2.promote_low_f32x4
            (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $q) (local.get $q)))
          (f64x2.div (f64x2.mul (local.get $S) (local.get $m1))
            (f64x2.add (f64x2.sqrt (local.get $v1)) (local.get $E)))))
        (v128.store (local.get $o) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
          (f32x4.demote_f64x2_zero (local.get $w0)) (f32x4.demote_f64x2_zero (local.get $w1))))
        (local.set $g (i32.add (local.get $g) (i32.const 16)))
        (local.set $m (i32.add (local.get $m) (i32.const 16)))
        (local.set $v (i32.add (local.get $v) (i32.const 16)))
        (local.set $w (i32.add (local.get $w) (i32.const 16)))
        (local.set $o (i32.add (local.get $o) (i32.const 16)))
        (local.set $mo (i32.add (local.get $mo) (i32.const 16)))
        (local.set $vo (i32.add (local.get $vo) (i32.const 16)))
        (br $simd)))
    (block $done
      (loop $one
        (br_if $done (i32.ge_u (local.get $g) (local.get $end)))
        (local.set $gs (f64.promote_f32 (f32.load (local.get $g))))
        (local.set $ms (f64.add
          (f64.mul (local.get $b1) (f64.promote_f32 (f32.load (local.get $m))))
          (f64.mul (local.get $c1) (local.get $gs))))
        (f32.store (local.get $mo) (f32.demote_f64 (local.get $ms)))
        (local.set $vs (f64.add
          (f64.mul (local.get $b2) (f64.promote_f32 (f32.load (local.get $v))))
          (f64.mul (f64.mul (local.get $c2) (local.get $gs)) (local.get $gs))))
        (f32.store (local.get $vo) (f32.demote_f64 (local.get $vs)))
        (f32.store (local.get $o) (f32.demote_f64 (f64.sub (f64.promote_f32 (f32.load (local.get $w)))
          (f64.div (f64.mul (local.get $s) (local.get $ms))
            (f64.add (f64.sqrt (local.get $vs)) (local.get $eps))))))
        (local.set $g (i32.add (local.get $g) (i32.const 4)))
        (local.set $m (i32.add (local.get $m) (i32.const 4)))
        (local.set $v (i32.add (local.get $v) (i32.const 4)))
        (local.set $w (i32.add (local.get $w) (i32.const 4)))
        (local.set $o (i32.add (local.get $o) (i32.const 4)))
        (local.set $mo (i32.add (local.get $mo) (i32.const 4)))
        (local.set $vo (i32.add (local.get $vo) (i32.const 4)))
        (br $one)))))
