;; Where the first NaN or infinity of a float32 array is: the array (n floats) at address 0 of the module's memory.
;; 16 floats per step with SIMD (a float is non-finite when its 8 exponent bits are all set); the step with a hit is
;; scanned again one float at a time. Built into training/wasm/finite-module.ts by scripts/build-wasm.js.
(module
  (memory (export "memory") 65)
  (func (export "firstNonFinite") (param $n i32) (result i32)
    (local $i i32) (local $end i32) (local $at i32) (local $acc v128) (local $mask v128)
    (local.set $mask (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))
    (local.set $end (i32.and (local.get $n) (i32.const -16)))
    (block $found
      (loop $steps
        (br_if $found (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $acc
          (v128.or
            (v128.or
              (i32x4.eq (v128.and (v128.load offset=0 (local.get $at)) (local.get $mask)) (local.get $mask))
              (i32x4.eq (v128.and (v128.load offset=16 (local.get $at)) (local.get $mask)) (local.get $mask)))
            (v128.or
              (i32x4.eq (v128.and (v128.load offset=32 (local.get $at)) (local.get $mask)) (local.get $mask))
              (i32x4.eq (v128.and (v128.load offset=48 (local.get $at)) (local.get $mask)) (local.get $mask)))))
        (br_if $found (v128.any_true (local.get $acc)))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $steps)))
    (block $none
      (loop $floats
        (br_if $none (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.eq (i32.and (i32.load (i32.shl (local.get $i) (i32.const 2))) (i32.const 0x7f800000))
                    (i32.const 0x7f800000))
          (then (return (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $floats)))
    (i32.const -1)))
