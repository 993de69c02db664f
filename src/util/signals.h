// Graceful stop: the first SIGINT or SIGTERM sets a flag that training loops check after each
// step (finish the step, write a checkpoint, exit non-zero); a second one ends the process at once
// (checkpoints are written atomically, so that never leaves a broken one).
#pragma once

namespace gptrain {

void install_stop_handlers();
bool stop_requested();
int stop_signal();  // the signal number received, 0 if none
void reset_stop_request();

}  // namespace gptrain
