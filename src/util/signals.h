// Graceful stop: the first SIGINT or SIGTERM sets a flag that training loops check after each
// step (finish the step, write a checkpoint, exit non-zero); a second one ends the process at once
// (checkpoints are written atomically, so that never leaves a broken one).
#pragma once

namespace gptrain {

// message: what the first signal prints (a static string); the training loops' by default.
void install_stop_handlers(const char* message = nullptr);
bool stop_requested();
int stop_signal();  // the signal number received, 0 if none
void reset_stop_request();
// SIGINT and SIGTERM end the process again (their default), for the work after a training loop
// (final evaluation, scoring, test answers), which has no step to finish and nothing to save.
void restore_default_stop_handlers();

}  // namespace gptrain
