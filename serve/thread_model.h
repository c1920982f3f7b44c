/* SPDX-License-Identifier: BSD-3-Clause */
/* The thread model of the plugin and of the qcow2map filter: how many
 * requests of ONE connection nbdkit may run at once.  See
 * thread_model.c for why it is not always "parallel".
 */
#ifndef QCOW2MAP_THREAD_MODEL_H
#define QCOW2MAP_THREAD_MODEL_H

/* Parse the thread-model=auto|parallel|serialize_requests parameter.
 * Returns 0, or -1 after nbdkit_error.
 */
int thread_model_config (const char *value);

/* The model to give nbdkit (an NBDKIT_THREAD_MODEL_* value). */
int thread_model_choose (void);

/* What thread-model=auto chooses with the nbdkit running us, as nbdkit
 * names it ("parallel" or "serialize_requests"; for --dump-plugin).
 */
const char *thread_model_auto_name (void);

#endif
