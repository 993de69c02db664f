// gptrain classify: label texts with a classifier model dir (the book's classify_review).
#include <memory>

#include "cli/commands.h"
#include "cli/device_option.h"
#include "train/finetune_cls.h"

namespace gptrain::cli {

Command register_classify(CLI::App& app) {
  auto o = std::make_shared<ClassifyOptions>();
  CLI::App* s = app.add_subcommand("classify", "Label texts with a classifier from gptrain finetune-cls");
  s->add_option("texts", o->texts, "Texts to classify");
  s->add_option("--model", o->model, "Classifier model dir (finetune-cls's <out-dir>/final)")->required();
  s->add_option("--adapter", o->adapter, "LoRA adapter dir applied to --model [default: the adapter in the model dir "
                                         "(a LoRA run's final/), if any]");
  CLI::Option* input =
      s->add_option("--input", o->input, "File of texts: one per line, or a .csv/.tsv with a header (see --text-column)");
  s->add_option("--data", o->input, "The same as --input")->excludes(input);
  s->add_option("--text-column", o->text_column, "Text column of a .csv/.tsv --input [default: Text]");
  s->add_option("--max-length", o->max_length, "Pad/truncate to this length [default: the length the model was "
                                               "trained with]");
  s->add_option("--batch-size", o->batch_size, "Texts per forward pass")->capture_default_str();
  s->add_option("--data-dir", o->data_dir, "Data directory (for the vocabulary when the model dir has none)");
  s->add_option("--threads", o->threads, "CPU threads (0: all cores)");
  struct DeviceChoice {
    std::string device = "cpu";
    bool tf32 = false;
  };
  auto device = std::make_shared<DeviceChoice>();
  add_device_option(s, device->device, device->tf32);
  return [o, device] {
    o->device = activate_device(device->device, "", device->tf32);
    return run_classify(*o);
  };
}

}  // namespace gptrain::cli
