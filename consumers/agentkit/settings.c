/*
 * settings.c - the agentkit group's settings: the LLM provider (an
 * OpenAI-compatible API; the key is a secret, never stored with a run),
 * timeouts of outbound calls, where http steps may go, and a run's limits.
 */
#include <stddef.h>

#include "agentkit_internal.h"

#define KOFF(f) offsetof(ak_settings_t, f)

static const config_row_t agentkit_rows[] = {
        {"OMNIFY_LLM_BASE_URL", CONFIG_STRING, KOFF(llm_base_url), 0, 8, 512,
         "https://api.openai.com/v1", NULL, 0,
         "Base URL of the OpenAI-compatible API (with /v1): llm steps and "
         "agents POST to <base>/chat/completions."},
        {"OMNIFY_LLM_API_KEY", CONFIG_STRING, KOFF(llm_api_key), 0, 0, 512, "",
         NULL, 1,
         "Bearer key of the LLM API; added to each call, never stored. "
         "Empty: llm calls wait in the outbox."},
        {"OMNIFY_LLM_MODEL", CONFIG_STRING, KOFF(llm_model), 0, 1, 100,
         "gpt-4o-mini", NULL, 0,
         "Model of llm steps and agents that name none."},
        {"OMNIFY_LLM_TIMEOUT_MS", CONFIG_INT, KOFF(llm_timeout_ms), 0, 1000,
         600000, "60000", NULL, 0, "Longest an LLM call may take (one try)."},
        {"OMNIFY_AGENTKIT_HTTP_TIMEOUT_MS", CONFIG_INT, KOFF(http_timeout_ms),
         0, 1000, 600000, "30000", NULL, 0,
         "Longest an http step's call may take (one try)."},
        {"OMNIFY_AGENTKIT_HTTP_ALLOW", CONFIG_STRING, KOFF(http_allow), 0, 0,
         2048, "", NULL, 0,
         "URL prefixes http steps may call, comma-separated (e.g. "
         "https://hooks.example.com/); empty: any http(s) URL."},
        {"OMNIFY_AGENTKIT_MAX_STEPS", CONFIG_INT, KOFF(max_steps), 0, 10,
         1000000, "10000", NULL, 0,
         "Step starts one run may make (loops included) before it fails."},
        {"OMNIFY_AGENTKIT_MAX_STATE_BYTES", CONFIG_INT, KOFF(max_state_bytes),
         0, 65536, 12582912, "8388608", NULL, 0,
         "Largest a run's recorded state may grow (history included)."},
        {"OMNIFY_AGENTKIT_MAX_OUTPUT_BYTES", CONFIG_INT, KOFF(max_output_bytes),
         0, 1024, 4194304, "1048576", NULL, 0,
         "Largest answer an http or llm step keeps."},
        {"OMNIFY_AGENTKIT_TIMER_POLL_MS", CONFIG_INT, KOFF(timer_poll_ms), 0,
         50, 60000, "1000", NULL, 0,
         "How often a process looks for timers set by others."},
};

const config_table_t agentkit_settings = {
        "agentkit",
        agentkit_rows,
        sizeof(agentkit_rows) / sizeof(agentkit_rows[0]),
        sizeof(ak_settings_t),
};
