#pragma once
// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON {name: {dtype, shape, data_offsets}, "__metadata__": {...}},
// then the raw little-endian tensor bytes. Debian packages no C++ reader, so it is written here;
// the reader validates everything before it touches tensor data.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace drifa::io {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;
using Metadata = std::map<std::string, std::string>;

struct SafetensorsFile {
  Metadata metadata;
  NamedTensors tensors;  // in file-offset order
  const torch::Tensor* find(const std::string& name) const;
};

// Writes atomically. Tensors are stored contiguous, on CPU, in their own dtype
// (float32/64, float16, bfloat16, int8/16/32/64, uint8, bool).
void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata = {});
std::string encode_safetensors(const NamedTensors& tensors, const Metadata& metadata = {});

// Throws drifa::Error naming the file and what is wrong: truncated, header larger than the
// file, malformed JSON, unknown dtype, offsets outside the data or overlapping, size mismatch.
SafetensorsFile load_safetensors(const std::string& path);
SafetensorsFile decode_safetensors(const std::string& bytes, const std::string& source);

}  // namespace drifa::io
