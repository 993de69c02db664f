# gptrain tokenize --model DIR with a Hugging Face tokenizer.json: ids equal to tokenizers' on the
# made-up fixture tokenizer and (when the data dir has them) on Llama 3 and Qwen3, --decode back,
# threads not changing the ids, the warning for invalid UTF-8, and errors that name the directory,
# the file and the field. The made-up tokenizer needs no data dir; the rest is skipped without it.
set(work "${WORK_DIR}/tokenize_hf_test")
file(REMOVE_RECURSE "${work}")
file(MAKE_DIRECTORY "${work}/tiny" "${work}/empty")
set(tiny_json "${FIXTURES_DIR}/hf_tokenizer/tiny_tokenizer.json")
file(COPY "${tiny_json}" DESTINATION "${work}/tiny")
file(RENAME "${work}/tiny/tiny_tokenizer.json" "${work}/tiny/tokenizer.json")

function(run_ok out_var)
  execute_process(COMMAND ${GPTRAIN} tokenize --quiet ${ARGN}
    OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gptrain tokenize ${ARGN} exited ${rc}: ${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
  set(${out_var}_err "${err}" PARENT_SCOPE)
endfunction()

function(expect_equal what got want)
  if(NOT "${got}" STREQUAL "${want}")
    message(FATAL_ERROR "${what}:\n  got  '${got}'\n  want '${want}'")
  endif()
endfunction()

# An error exit whose message holds every one of the given parts.
function(expect_error what)
  cmake_parse_arguments(ARG "" "" "ARGS;PARTS" ${ARGN})
  execute_process(COMMAND ${GPTRAIN} tokenize ${ARG_ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0)
    message(FATAL_ERROR "${what}: expected an error, got exit 0 and '${out}'")
  endif()
  foreach(part IN LISTS ARG_PARTS)
    string(FIND "${err}" "${part}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "${what}: '${part}' is not in the error: ${err}")
    endif()
  endforeach()
endfunction()

# The made-up tokenizer: tokenizers' ids (tests/fixtures/hf_tokenizer/tiny_cases.jsonl).
file(WRITE "${work}/hello.txt" "hello the")
run_ok(ids "${work}/hello.txt" --model "${work}/tiny")
expect_equal("tiny tokenizer: hello the" "${ids}" "258 111 260\n")
file(WRITE "${work}/mask.txt" "x   <mask> y")
run_ok(ids "${work}/mask.txt" --model "${work}/tiny" --allow-special)
expect_equal("tiny tokenizer: lstrip" "${ids}" "120 267 32 121\n")
file(WRITE "${work}/ids.txt" "258 111 260 267")
run_ok(text "${work}/ids.txt" --model "${work}/tiny" --decode)
expect_equal("tiny tokenizer: decode" "${text}" "hello the<mask>")

# Invalid UTF-8: encoded as its U+FFFD replacement, with a warning naming the file and byte.
execute_process(COMMAND printf "ab\\377cd" OUTPUT_FILE "${work}/bad.txt")
run_ok(ids "${work}/bad.txt" --model "${work}/tiny")
file(WRITE "${work}/replaced.txt" "ab�cd")  # U+FFFD
run_ok(want "${work}/replaced.txt" --model "${work}/tiny")
expect_equal("invalid UTF-8 is its replacement" "${ids}" "${want}")
string(FIND "${ids_err}" "bad.txt: not valid UTF-8 at byte 2 (0xff)" at)
if(at EQUAL -1)
  message(FATAL_ERROR "no warning for invalid UTF-8 naming the file and byte: ${ids_err}")
endif()

# Errors.
expect_error("a directory without tokenizer files" ARGS "${work}/hello.txt" --model "${work}/empty"
  PARTS "${work}/empty" "tokenizer.json" "vocab.json + merges.txt" "encoder.json + vocab.bpe")
expect_error("no such directory" ARGS "${work}/hello.txt" --model "${work}/absent" PARTS "${work}/absent" "no such directory")
file(READ "${tiny_json}" json)
file(MAKE_DIRECTORY "${work}/bad")
string(SUBSTRING "${json}" 0 2000 truncated)
file(WRITE "${work}/bad/tokenizer.json" "${truncated}")
expect_error("malformed tokenizer.json" ARGS "${work}/hello.txt" --model "${work}/bad"
  PARTS "${work}/bad/tokenizer.json line " ", column " "not valid JSON")
string(REPLACE "\"type\": \"BPE\"" "\"type\": \"Unigram\"" unigram "${json}")
file(WRITE "${work}/bad/tokenizer.json" "${unigram}")
expect_error("unknown model type" ARGS "${work}/hello.txt" --model "${work}/bad"
  PARTS "tokenizer.json: model.type: unsupported model type \"Unigram\" (gptrain knows BPE)")
string(REPLACE "\\\\p{N}|" "\\\\p{N}{1,2}|" pattern "${json}")
file(WRITE "${work}/bad/tokenizer.json" "${pattern}")
expect_error("unknown pre-tokenizer pattern" ARGS "${work}/hello.txt" --model "${work}/bad"
  PARTS "tokenizer.json: pre_tokenizer.pretokenizers[0].pattern.Regex: unsupported pattern" "\\p{N}{1,2}"
        "gptrain knows the GPT-2, Llama 3 and Qwen2 patterns")
expect_error("--model with --vocab" ARGS "${work}/hello.txt" --model "${work}/tiny" --vocab a --merges b
  PARTS "--model" "--vocab")

# The data dir's Llama 3 and Qwen3 tokenizers on the-verdict.txt: tokenizers' counts
# (tests/fixtures/hf_tokenizer/data_files.json), and the same ids on 1 and 2 threads.
if(NOT EXISTS "${DATA_DIR}/the-verdict.txt")
  message("SKIPPED: no the-verdict.txt in ${DATA_DIR}")
  file(REMOVE_RECURSE "${work}")
  return()
endif()
file(READ "${FIXTURES_DIR}/hf_tokenizer/data_files.json" fixture)
string(JSON files_count LENGTH "${fixture}" files)
math(EXPR last "${files_count} - 1")
foreach(i RANGE ${last})
  string(JSON path GET "${fixture}" files ${i} path)
  if(path STREQUAL "the-verdict.txt")
    set(verdict ${i})
  endif()
endforeach()
foreach(pair "llama3;tokenizers/llama3" "qwen3;tokenizers/qwen")
  list(GET pair 0 name)
  list(GET pair 1 dir)
  if(NOT EXISTS "${DATA_DIR}/${dir}/tokenizer.json")
    message("SKIPPED: no ${DATA_DIR}/${dir}/tokenizer.json")
    continue()
  endif()
  string(JSON want_count GET "${fixture}" files ${verdict} ${name} special count)
  run_ok(ids "${DATA_DIR}/the-verdict.txt" --model "${DATA_DIR}/${dir}" --threads 1 --allow-special)
  string(REGEX MATCHALL "[0-9]+" id_list "${ids}")
  list(LENGTH id_list count)
  expect_equal("${name}: the-verdict.txt token count" "${count}" "${want_count}")
  run_ok(ids2 "${DATA_DIR}/the-verdict.txt" --model "${DATA_DIR}/${dir}" --threads 2 --allow-special)
  expect_equal("${name}: 2 threads" "${ids2}" "${ids}")
  run_ok(unused "${DATA_DIR}/the-verdict.txt" --model "${DATA_DIR}/${dir}" --format u32 --output "${work}/verdict.u32")
  run_ok(unused "${work}/verdict.u32" --model "${DATA_DIR}/${dir}" --decode --format u32 --output "${work}/verdict.txt")
  file(SHA256 "${work}/verdict.txt" got)
  file(SHA256 "${DATA_DIR}/the-verdict.txt" want)
  expect_equal("${name}: decoded the-verdict.txt" "${got}" "${want}")
  expect_error("${name}: ids over 65535 in u16" ARGS "${DATA_DIR}/the-verdict.txt" --model "${DATA_DIR}/${dir}" --format u16
    PARTS "does not fit --format u16")
endforeach()
file(REMOVE_RECURSE "${work}")
