// Named parameters in one flat float32 buffer (so the optimizer, clipping and checkpoints walk a
// few large arrays), with gradients only for the trainable ones, in a second flat buffer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace gptrain {

// What a parameter is decides its initialisation and whether decay may exempt it.
enum class ParamKind { Embedding, Norm, LinearWeight, LinearBias };

struct Parameter {
  std::string name;
  ParamKind kind = ParamKind::LinearWeight;
  int64_t fan_in = 0;  // linear weights and biases: the layer's input width
  Tensor value;
  Tensor grad;  // undefined while frozen: frozen parameters cost no gradient work

  bool is_bias_or_norm() const { return kind == ParamKind::Norm || kind == ParamKind::LinearBias; }
  bool trainable = true;
  int64_t offset = 0;            // position in the flat value buffer
};

class ParameterSet {
 public:
  // Layout phase: add every parameter, then call allocate() once.
  int add(const std::string& name, const Shape& shape, ParamKind kind, int64_t fan_in = 0);
  void allocate();

  Parameter& operator[](int index) { return params_[static_cast<size_t>(index)]; }
  const Parameter& operator[](int index) const { return params_[static_cast<size_t>(index)]; }
  int size() const { return static_cast<int>(params_.size()); }
  std::vector<Parameter>& all() { return params_; }
  const std::vector<Parameter>& all() const { return params_; }
  Parameter* find(const std::string& name);
  const Parameter* find(const std::string& name) const;
  Parameter& at(const std::string& name);  // throws naming the parameter when it does not exist

  int64_t numel() const { return total_; }
  int64_t trainable_numel() const;
  Tensor flat_values() const { return flat_; }
  Tensor flat_grads() const { return flat_grads_; }  // trainable parameters only, in order

  // (Re)builds the gradient buffer for the current trainable flags and zeroes it.
  void allocate_grads();
  void zero_grads();

 private:
  std::vector<Parameter> params_;
  int64_t total_ = 0;
  Tensor flat_;
  Tensor flat_grads_;
};

}  // namespace gptrain
