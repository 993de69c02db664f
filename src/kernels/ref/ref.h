// Scalar reference kernels: straightforward loops, templated on the element type so they run in
// double for gradient checks. They are the ground truth every other backend is tested against and
// are never used for speed; the ops run them for F64 tensors. Signatures mirror kernels/cpu/cpu.h
// with T in place of float; one header per op.
#pragma once

#include "kernels/ref/embedding.h"
#include "kernels/ref/dropout.h"
#include "kernels/ref/layernorm.h"
#include "kernels/ref/matmul.h"
#include "kernels/ref/attention.h"
#include "kernels/ref/gelu.h"
#include "kernels/ref/residual.h"
#include "kernels/ref/cross_entropy.h"
#include "kernels/ref/adamw.h"
#include "kernels/ref/pool.h"
#include "kernels/ref/attention_decode.h"
#include "kernels/ref/rmsnorm.h"
#include "kernels/ref/rope.h"
#include "kernels/ref/lora.h"
