// Named parameters in one flat buffer (so the optimizer, clipping and checkpoints walk a few large
// arrays), with gradients only for the trainable ones, in a second flat buffer. Each parameter
// records the layer it belongs to, so backward knows where it may stop.
//
// The compute type (the bf16 mode, docs/DESIGN.md): the values stay the model (float32: loading,
// saving, checkpoints, merges), and with a compute type other than theirs a third flat buffer, in
// the values' layout, holds their copy in that type, which is what the passes read; the gradients
// are of the compute type. Without one, `compute` is the value itself.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace gptrain {

// What a parameter is decides its initialisation and whether decay may exempt it. LoraA / LoraB:
// a LoRA adapter's down and up projections (model/lora.h).
enum class ParamKind { Embedding, Norm, LinearWeight, LinearBias, LoraA, LoraB };

// Layer numbers: the embeddings are below block 0; the final norm and the head above the last block.
inline constexpr int64_t kEmbeddingLayer = -1;

struct Parameter {
  std::string name;
  ParamKind kind = ParamKind::LinearWeight;
  int64_t fan_in = 0;  // linear weights and biases: the layer's input width; LoraA: the rank (the book's A is [in, rank])
  int64_t layer = 0;   // kEmbeddingLayer, a block index, or n_layers (final norm and head)
  Tensor value;
  Tensor compute;  // what the passes read: `value`, or its copy in the set's compute type
  Tensor grad;  // of the compute type; undefined while frozen: frozen parameters cost no gradient work

  bool is_bias_or_norm() const { return kind == ParamKind::Norm || kind == ParamKind::LinearBias; }
  bool is_adapter() const { return kind == ParamKind::LoraA || kind == ParamKind::LoraB; }
  bool trainable = true;
  int64_t offset = 0;  // position in the flat value buffer, in elements
};

class ParameterSet {
 public:
  // Layout phase: add every parameter, then call allocate() once (or never, to only count).
  int add(const std::string& name, const Shape& shape, ParamKind kind, int64_t layer, int64_t fan_in = 0);
  void allocate(DType dtype = DType::F32, Device device = Device::CPU);
  // Moves the values (and the gradients, when allocated) to `device`; the views follow.
  void move_to(Device device);
  Device device() const { return flat_.defined() ? flat_.device() : Device::CPU; }

  Parameter& operator[](int index) { return params_[static_cast<size_t>(index)]; }
  const Parameter& operator[](int index) const { return params_[static_cast<size_t>(index)]; }
  int size() const { return static_cast<int>(params_.size()); }
  std::vector<Parameter>& all() { return params_; }
  const std::vector<Parameter>& all() const { return params_; }
  Parameter* find(const std::string& name);
  const Parameter* find(const std::string& name) const;
  Parameter& at(const std::string& name);  // throws naming the parameter when it does not exist

  // Passes compute in `dtype` (BF16 beside F32 values, or the values' own type); the gradient
  // buffer is rebuilt in it when it exists, and the copy made by refresh_compute().
  void set_compute_dtype(DType dtype);
  DType compute_dtype() const { return compute_dtype_; }
  bool has_compute_copy() const { return flat_compute_.defined(); }
  // Rebuilds the compute copy from the values (after a load, or an update outside the optimizer):
  // round to nearest, except for trainable parameters once the optimizer has taken `step` > 0
  // steps, which get the stochastic rounding its step `step` drew (kernels/stochastic_rounding.h
  // at `seed`), so a resumed run reads exactly the copy the interrupted one had. A no-op without a copy.
  void refresh_compute(uint64_t seed = 0, int64_t step = 0);

  int64_t numel() const;  // elements of every parameter (without alignment padding)
  int64_t trainable_numel() const;
  DType dtype() const { return dtype_; }
  Tensor flat_values() const { return flat_; }
  Tensor flat_compute() const { return flat_compute_; }  // the copy; undefined without one
  Tensor flat_grads() const { return flat_grads_; }  // trainable parameters only, in order
  // The lowest layer holding a trainable parameter; INT64_MAX when nothing is trainable.
  int64_t lowest_trainable_layer() const;

  // (Re)builds the gradient buffer for the current trainable flags and zeroes it.
  void allocate_grads();
  // Gradients are allocated on first need, so a model that only infers never holds them (a 1B
  // model's would be 5 GB): allocate_grads() unless it was done.
  void ensure_grads();
  void zero_grads();  // ensure_grads(), then zeroes

 private:
  void bind_values();  // each parameter's value and compute: their views of flat_ (and flat_compute_)

  std::vector<Parameter> params_;
  int64_t total_ = 0;  // padded elements of the flat buffer
  DType dtype_ = DType::F32;
  DType compute_dtype_ = DType::F32;
  Tensor flat_;
  Tensor flat_compute_;
  Tensor flat_grads_;
  bool grads_allocated_ = false;
};

}  // namespace gptrain
