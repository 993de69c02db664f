# gptrain tokenize end to end: ids as text and u16, --allow-special, --decode (with U+FFFD for a
# split character), and errors that name the vocabulary file and line. Needs the GPT-2 vocabulary
# in DATA_DIR/gpt2_tokenizer; prints "SKIPPED:" (the test's SKIP_REGULAR_EXPRESSION) without it.
if(NOT EXISTS "${DATA_DIR}/gpt2_tokenizer/encoder.json" OR NOT EXISTS "${DATA_DIR}/gpt2_tokenizer/vocab.bpe")
  message("SKIPPED: no GPT-2 vocabulary in ${DATA_DIR}/gpt2_tokenizer")
  return()
endif()
set(work "${WORK_DIR}/tokenize_test")
file(REMOVE_RECURSE "${work}")
file(MAKE_DIRECTORY "${work}")

function(run_ok out_var)
  execute_process(COMMAND ${GPTRAIN} tokenize --data-dir ${DATA_DIR} --quiet ${ARGN}
    OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gptrain tokenize ${ARGN} exited ${rc}: ${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

function(expect_equal what got want)
  if(NOT "${got}" STREQUAL "${want}")
    message(FATAL_ERROR "${what}:\n  got  '${got}'\n  want '${want}'")
  endif()
endfunction()

# The book's example (inventory §1.2), with and without the special token.
file(WRITE "${work}/tea.txt" "Hello, do you like tea? <|endoftext|> In the sunlit terracesof someunknownPlace.")
run_ok(ids "${work}/tea.txt" --allow-special)
expect_equal("tea, --allow-special" "${ids}"
  "15496 11 466 345 588 8887 30 220 50256 554 262 4252 18250 8812 2114 1659 617 34680 27271 13\n")
run_ok(ids "${work}/tea.txt")
expect_equal("tea, special as text" "${ids}"
  "15496 11 466 345 588 8887 30 1279 91 437 1659 5239 91 29 554 262 4252 18250 8812 2114 1659 617 34680 27271 13\n")

# the-verdict.txt: 5145 ids separated by single spaces; the u16 shard decodes back to the file.
if(EXISTS "${DATA_DIR}/the-verdict.txt")
  run_ok(ids "${DATA_DIR}/the-verdict.txt" --threads 2)
  string(REGEX MATCHALL "[0-9]+" id_list "${ids}")
  list(LENGTH id_list count)
  expect_equal("the-verdict.txt token count" "${count}" "5145")
  string(SUBSTRING "${ids}" 0 34 head)
  expect_equal("the-verdict.txt first ids" "${head}" "40 367 2885 1464 1807 3619 402 271")
  run_ok(unused "${DATA_DIR}/the-verdict.txt" --format u16 --output "${work}/verdict.u16")
  file(SIZE "${work}/verdict.u16" size)
  expect_equal("u16 shard size" "${size}" "10290")
  run_ok(unused "${work}/verdict.u16" --decode --format u16 --output "${work}/verdict.txt")
  file(SHA256 "${work}/verdict.txt" got)
  file(SHA256 "${DATA_DIR}/the-verdict.txt" want)
  expect_equal("decoded the-verdict.txt" "${got}" "${want}")
endif()

# 11737 is the bytes E9 BE, the first two of U+9F98's three: shown as one U+FFFD, as tiktoken does.
file(WRITE "${work}/split.ids" "11737 246\n11737")
run_ok(text "${work}/split.ids" --decode)
string(HEX "${text}" hex)
expect_equal("decode of a split character" "${hex}" "e9be98efbfbd")

# Errors name the file, and the line where the file is damaged.
execute_process(COMMAND ${GPTRAIN} tokenize "${work}/tea.txt" --vocab "${work}/missing.json"
  --merges "${DATA_DIR}/gpt2_tokenizer/vocab.bpe" RESULT_VARIABLE rc ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "missing.json")
  message(FATAL_ERROR "a missing vocabulary must fail naming it; got rc=${rc} err=${err}")
endif()
file(WRITE "${work}/bad_merges.txt" "#version: 0.2\nĠ t\nthis line is bad\n")
execute_process(COMMAND ${GPTRAIN} tokenize "${work}/tea.txt" --vocab "${DATA_DIR}/gpt2_tokenizer/encoder.json"
  --merges "${work}/bad_merges.txt" RESULT_VARIABLE rc ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "bad_merges.txt line 3")
  message(FATAL_ERROR "a corrupt merges file must fail naming the file and line 3; got rc=${rc} err=${err}")
endif()
file(REMOVE_RECURSE "${work}")
