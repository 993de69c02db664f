// safetensors reader and writer: round trips, dtype conversion, and a table of corrupt files
// (modelled on llama.cpp's test-gguf.cpp), each rejected with a message that names the file and
// the tensor or field at fault.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "tests/common/temp_dir.h"
#include "util/error.h"

namespace gptrain::io {
namespace {

using testing_util::TempDir;

// An 8-byte little-endian length, the header, then the data: exactly what a writer produces.
std::string file_bytes(const std::string& header, const std::string& data, uint64_t header_len) {
  std::string out(8, '\0');
  std::memcpy(out.data(), &header_len, 8);
  return out + header + data;
}
std::string file_bytes(const std::string& header, const std::string& data) {
  return file_bytes(header, data, header.size());
}

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string error_of(const std::filesystem::path& path) {
  try {
    const SafeTensorsFile file = SafeTensorsFile::open(path);
    for (const TensorInfo& t : file.tensors()) file.raw(t.name);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string tensor_entry(const std::string& name, const std::string& dtype, const std::string& shape,
                         const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

struct CorruptCase {
  const char* name;
  std::string bytes;
  std::vector<std::string> expect;  // substrings of the message besides the file name
};

std::vector<CorruptCase> corrupt_cases() {
  const std::string zeros8(8, '\0'), zeros12(12, '\0'), zeros16(16, '\0');
  const std::string ok_w = tensor_entry("w", "F32", "[2]", "[0,8]");
  std::vector<CorruptCase> c;
  c.push_back({"empty_file", "", {"0 bytes is too small", "truncated"}});
  c.push_back({"shorter_than_length_field", std::string(5, '\0'), {"5 bytes is too small"}});
  c.push_back({"header_over_100MB_cap", file_bytes("{}", "", 100'000'001), {"header length 100000001", "limit"}});
  c.push_back({"header_length_past_end", file_bytes("{}", "", 4096), {"runs past the end", "truncated"}});
  c.push_back({"header_length_near_2_64", file_bytes("{}", "", ~uint64_t{0}), {"exceeds the safetensors limit"}});
  c.push_back({"header_not_starting_with_brace", file_bytes("[]      ", ""), {"must start with '{'", "0x5b"}});
  c.push_back({"header_with_leading_space", file_bytes(" {}     ", ""), {"must start with '{'"}});
  c.push_back({"zero_length_header", file_bytes("", ""), {"must start with '{'"}});
  c.push_back({"bad_json", file_bytes("{\"w\": ", ""), {"not valid UTF-8 JSON"}});
  c.push_back({"trailing_garbage_after_json", file_bytes("{} x", ""), {"not valid UTF-8 JSON"}});
  c.push_back({"invalid_utf8", file_bytes("{\"\xff\xfe\": 1}", ""), {"not valid UTF-8 JSON"}});
  c.push_back({"duplicate_tensor", file_bytes("{" + ok_w + "," + ok_w + "}", zeros8), {"'w' is listed twice"}});
  c.push_back({"duplicate_field",
               file_bytes(R"({"w":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})", zeros8),
               {"duplicate key 'dtype'"}});
  c.push_back({"deep_nesting", file_bytes("{\"w\":{\"x\":[[[[[[[[[[]]]]]]]]]]}}", ""), {"nested deeper"}});
  c.push_back({"control_bytes_escaped", file_bytes("{\"a\\u001b[31m\":1,\"a\\u001b[31m\":1}", ""),
               {"'a\\x1b[31m' is listed twice"}});
  c.push_back({"tensor_not_object", file_bytes(R"({"w": 3})", ""), {"tensor 'w'", "expected an object"}});
  c.push_back({"missing_dtype", file_bytes(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", zeros8),
               {"tensor 'w'", "'dtype' is missing"}});
  c.push_back({"missing_shape", file_bytes(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", zeros8),
               {"tensor 'w'", "'shape' is missing"}});
  c.push_back({"missing_offsets", file_bytes(R"({"w":{"dtype":"F32","shape":[2]}})", zeros8),
               {"tensor 'w'", "'data_offsets' is missing"}});
  c.push_back({"unknown_dtype", file_bytes("{" + tensor_entry("w", "F7", "[2]", "[0,8]") + "}", zeros8),
               {"tensor 'w'", "unknown dtype 'F7'"}});
  c.push_back({"dtype_not_string", file_bytes(R"({"w":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", zeros8),
               {"tensor 'w'", "'dtype' must be a string"}});
  c.push_back({"shape_not_array", file_bytes("{" + tensor_entry("w", "F32", "2", "[0,8]") + "}", zeros8),
               {"tensor 'w'", "'shape' must be an array"}});
  c.push_back({"negative_dimension", file_bytes("{" + tensor_entry("w", "F32", "[-2]", "[0,8]") + "}", zeros8),
               {"tensor 'w'", "'shape' must be a non-negative integer", "-2"}});
  c.push_back({"fractional_dimension", file_bytes("{" + tensor_entry("w", "F32", "[2.5]", "[0,8]") + "}", zeros8),
               {"tensor 'w'", "non-negative integer"}});
  c.push_back({"dimension_over_int64",
               file_bytes("{" + tensor_entry("w", "F32", "[9223372036854775808]", "[0,8]") + "}", zeros8),
               {"tensor 'w'", "does not fit in int64"}});
  c.push_back({"offsets_wrong_arity", file_bytes("{" + tensor_entry("w", "F32", "[2]", "[0]") + "}", zeros8),
               {"tensor 'w'", "'data_offsets' must be [begin, end]"}});
  c.push_back({"negative_offset", file_bytes("{" + tensor_entry("w", "F32", "[2]", "[-8,0]") + "}", zeros8),
               {"tensor 'w'", "'data_offsets' must be a non-negative integer"}});
  c.push_back({"offsets_past_end_truncated",
               file_bytes("{" + tensor_entry("w", "F32", "[4]", "[0,16]") + "}", zeros8),
               {"tensor 'w'", "run past the end of the data (8 bytes)", "truncated"}});
  c.push_back({"offsets_reversed", file_bytes("{" + tensor_entry("w", "F32", "[2]", "[8,0]") + "}", zeros8),
               {"tensor 'w'", "reversed"}});
  c.push_back({"offsets_overlapping",
               file_bytes("{" + tensor_entry("a", "F32", "[2]", "[0,8]") + "," +
                              tensor_entry("b", "F32", "[2]", "[4,12]") + "}",
                          zeros12),
               {"tensor 'b'", "overlap tensor 'a'"}});
  c.push_back({"offsets_with_gap",
               file_bytes("{" + tensor_entry("a", "F32", "[1]", "[0,4]") + "," +
                              tensor_entry("b", "F32", "[1]", "[8,12]") + "}",
                          zeros12),
               {"tensor 'b'", "leave a gap", "ends at 4"}});
  c.push_back({"first_offset_not_zero", file_bytes("{" + tensor_entry("w", "F32", "[1]", "[4,8]") + "}", zeros8),
               {"tensor 'w'", "leave a gap"}});
  c.push_back({"shape_size_mismatch", file_bytes("{" + tensor_entry("w", "F32", "[3]", "[0,8]") + "}", zeros8),
               {"tensor 'w'", "shape [3] of F32 needs 12 bytes", "hold 8"}});
  c.push_back({"shape_product_overflow",  // the safetensors-cpp PoC: wraps to 4 elements without checks
               file_bytes("{" + tensor_entry("w", "F32", "[4194305,4194305,211106198978564]", "[0,16]") + "}",
                          zeros16),
               {"tensor 'w'", "overflows 64 bits"}});
  c.push_back({"byte_size_overflow",
               file_bytes("{" + tensor_entry("w", "F32", "[4611686018427387904]", "[0,0]") + "}", ""),
               {"tensor 'w'", "byte size", "overflows 64 bits"}});
  c.push_back({"trailing_data", file_bytes("{" + ok_w + "}", zeros12), {"4 bytes of unexplained trailing data"}});
  c.push_back({"metadata_value_not_string", file_bytes(R"({"__metadata__":{"format":1}})", ""),
               {"'__metadata__' entry 'format' must be a string"}});
  c.push_back({"metadata_not_object", file_bytes(R"({"__metadata__":[1]})", ""), {"'__metadata__' must be an object"}});
  return c;
}

class CorruptFile : public ::testing::TestWithParam<CorruptCase> {};

TEST_P(CorruptFile, is_rejected_naming_file_and_field) {
  const TempDir dir;
  const CorruptCase& c = GetParam();
  const std::filesystem::path path = dir / (std::string(c.name) + ".safetensors");
  write_bytes(path, c.bytes);
  const std::string message = error_of(path);
  ASSERT_FALSE(message.empty()) << c.name << " was accepted";
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  for (const std::string& part : c.expect) EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
}

INSTANTIATE_TEST_SUITE_P(Safetensors, CorruptFile, ::testing::ValuesIn(corrupt_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

// Every byte-prefix of a valid file is a truncated download: each must be rejected cleanly.
TEST(Safetensors, every_truncation_of_a_valid_file_is_rejected) {
  const TempDir dir;
  const std::filesystem::path path = dir / "full.safetensors";
  save_safetensors(path, {{"a", Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6})}, {"b", Tensor::zeros({5})}});
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::filesystem::path cut = dir / "cut.safetensors";
    write_bytes(cut, bytes.substr(0, n));
    EXPECT_FALSE(error_of(cut).empty()) << "a " << n << "-byte prefix was accepted";
  }
  EXPECT_TRUE(error_of(path).empty()) << error_of(path);
}

TEST(Safetensors, round_trip_keeps_values_shapes_order_and_metadata) {
  const TempDir dir;
  const std::filesystem::path path = dir / "t.safetensors";
  const Tensor a = Tensor::from_vector({2, 3}, {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f});
  const Tensor scalar = Tensor::from_vector({}, {42.0f});
  const Tensor empty = Tensor::zeros({0, 7});
  const Tensor b = Tensor::from_vector({4}, {std::numeric_limits<float>::infinity(), -1.0f, 7.0f, 8.0f});
  save_safetensors(path, {{"z.last", a}, {"scalar", scalar}, {"empty", empty}, {"b", b}},
                   {{"format", "pt"}, {"note", "hello"}});
  const SafeTensorsFile f = SafeTensorsFile::open(path);
  ASSERT_EQ(f.tensors().size(), 4u);
  EXPECT_EQ(f.tensors()[0].name, "z.last");  // data in declaration order
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "hello");
  EXPECT_EQ(f.at("z.last").shape, (Shape{2, 3}));
  EXPECT_EQ(f.load("z.last").to_vector(), a.to_vector());
  EXPECT_EQ(f.load("scalar").shape(), Shape{});
  EXPECT_EQ(f.load("scalar")[0], 42.0f);
  EXPECT_EQ(f.load("empty").shape(), (Shape{0, 7}));
  EXPECT_EQ(f.load("b").to_vector(), b.to_vector());
  EXPECT_TRUE(std::signbit(f.load("z.last")[4]));
  EXPECT_EQ(f.find("missing"), nullptr);
  // The header is padded to 8 bytes so the data is aligned, as the reference writes it.
  std::ifstream in(path, std::ios::binary);
  uint64_t header_len = 0;
  in.read(reinterpret_cast<char*>(&header_len), 8);
  EXPECT_EQ(header_len % 8, 0u);
}

TEST(Safetensors, f16_and_bf16_are_converted_to_float32) {
  const TempDir dir;
  const std::filesystem::path path = dir / "half.safetensors";
  // F16: 1, -2, 65504 (max), 2^-24 (smallest subnormal), -0, inf, NaN; BF16: 1, -2.5, 3.0e38-ish.
  const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00, 0x7e00};
  const std::vector<uint16_t> bf16 = {0x3f80, 0xc020, 0x7f61};
  std::string data(reinterpret_cast<const char*>(f16.data()), f16.size() * 2);
  data += std::string(reinterpret_cast<const char*>(bf16.data()), bf16.size() * 2);
  // An odd header length leaves the data unaligned: the reader must still read it correctly.
  const std::string header = "{" + tensor_entry("h", "F16", "[7]", "[0,14]") + "," +
                             tensor_entry("b", "BF16", "[3]", "[14,20]") + "}";
  ASSERT_NE(header.size() % 2, 0u);
  write_bytes(path, file_bytes(header, data));
  const SafeTensorsFile f = SafeTensorsFile::open(path);
  const std::vector<float> h = f.load("h").to_vector();
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.0f);
  EXPECT_EQ(h[2], 65504.0f);
  EXPECT_EQ(h[3], 0x1p-24f);
  EXPECT_TRUE(h[4] == 0.0f && std::signbit(h[4]));
  EXPECT_EQ(h[5], std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(h[6]));
  const std::vector<float> b = f.load("b").to_vector();
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], -2.5f);
  uint32_t bits = 0x7f610000u;
  float expected;
  std::memcpy(&expected, &bits, 4);
  EXPECT_EQ(b[2], expected);
}

TEST(Safetensors, load_errors_name_the_tensor_and_the_shapes) {
  const TempDir dir;
  const std::filesystem::path path = dir / "t.safetensors";
  const std::string header = "{" + tensor_entry("ids", "I64", "[2]", "[0,16]") + "," +
                             tensor_entry("w", "F32", "[2,3]", "[16,40]") + "}";
  write_bytes(path, file_bytes(header, std::string(40, '\0')));
  const SafeTensorsFile f = SafeTensorsFile::open(path);
  EXPECT_EQ(f.raw("ids").size(), 16u);
  try {
    f.load_into("w", Tensor::zeros({3, 2}));
    FAIL() << "shape mismatch accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string() + ": tensor 'w' has shape [2, 3] but [3, 2] was expected"),
              std::string::npos)
        << e.what();
  }
  try {
    f.load("ids");
    FAIL() << "I64 loaded as float";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'ids' has dtype I64; only F32, F64, F16 and BF16"), std::string::npos)
        << e.what();
  }
  try {
    f.load("nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no tensor named 'nope'"), std::string::npos) << e.what();
  }
}

TEST(Safetensors, accepts_what_the_reference_accepts) {
  const TempDir dir;
  const std::filesystem::path path = dir / "ok.safetensors";
  // Empty header padded with spaces (the reference's serialization of no tensors), null metadata,
  // several empty tensors sharing an offset, unknown fields ignored, a rank-0 tensor.
  write_bytes(path, file_bytes("{}      ", ""));
  EXPECT_TRUE(SafeTensorsFile::open(path).tensors().empty());
  const std::string header = R"({"__metadata__":null,"e1":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                             R"("e2":{"dtype":"U8","shape":[3,0],"data_offsets":[0,0],"extra":{"x":[1]}},)"
                             R"("s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})";
  const float value = 3.5f;
  write_bytes(path, file_bytes(header, std::string(reinterpret_cast<const char*>(&value), 4)));
  const SafeTensorsFile f = SafeTensorsFile::open(path);
  EXPECT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.load("s")[0], 3.5f);
  EXPECT_EQ(f.at("e2").shape, (Shape{3, 0}));
  EXPECT_EQ(f.raw("e2").size(), 0u);
}

TEST(Safetensors, reads_the_transformers_written_tiny_models) {
  const char* data_dir = std::getenv("GPTRAIN_TEST_DATA_DIR");
  if (!data_dir || !std::filesystem::exists(std::filesystem::path(data_dir) / "tiny_models"))
    GTEST_SKIP() << "GPTRAIN_TEST_DATA_DIR/tiny_models not found (CTest sets GPTRAIN_TEST_DATA_DIR to ../shared/data)";
  const std::filesystem::path root = std::filesystem::path(data_dir) / "tiny_models";
  const SafeTensorsFile fake = SafeTensorsFile::open(root / "fake_gpt2_vocab50257" / "model.safetensors");
  EXPECT_EQ(fake.tensors().size(), 16u);
  EXPECT_EQ(fake.at("transformer.wte.weight").shape, (Shape{50257, 2}));
  EXPECT_EQ(fake.at("transformer.h.0.attn.c_attn.weight").shape, (Shape{2, 6}));
  EXPECT_EQ(fake.find("lm_head.weight"), nullptr);
  const SafeTensorsFile tiny = SafeTensorsFile::open(root / "tiny_gpt2_vocab21" / "model.safetensors");
  EXPECT_EQ(tiny.metadata().at("format"), "pt");
  EXPECT_EQ(tiny.at("wte.weight").shape, (Shape{21, 2}));
  EXPECT_EQ(tiny.load("h.0.mlp.c_proj.weight").shape(), (Shape{8, 2}));
}

TEST(Safetensors, writer_rejects_duplicate_names_and_leaves_no_file) {
  const TempDir dir;
  const std::filesystem::path path = dir / "dup.safetensors";
  EXPECT_THROW(save_safetensors(path, {{"a", Tensor::zeros({1})}, {"a", Tensor::zeros({1})}}), Error);
  EXPECT_THROW(save_safetensors(path, {{"__metadata__", Tensor::zeros({1})}}), Error);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "a temporary file was left behind";
}

// A reader that still maps the old file keeps reading the old data when the file is replaced
// (the write goes to a new inode and is renamed over the old name), instead of faulting.
TEST(Safetensors, replacing_a_mapped_file_does_not_disturb_its_reader) {
  const TempDir dir;
  const std::filesystem::path path = dir / "m.safetensors";
  save_safetensors(path, {{"w", Tensor::from_vector({3}, {1, 2, 3})}});
  const SafeTensorsFile old_file = SafeTensorsFile::open(path);
  save_safetensors(path, {{"w", Tensor::from_vector({3}, {7, 8, 9})}, {"v", Tensor::zeros({100})}});
  EXPECT_EQ(old_file.load("w").to_vector(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(SafeTensorsFile::open(path).load("w").to_vector(), (std::vector<float>{7, 8, 9}));
}

}  // namespace
}  // namespace gptrain::io
