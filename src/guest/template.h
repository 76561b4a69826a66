/* VM templates (template.c): a guest booted to be snapshotted, then resumed. */
#pragma once

#include "agent.h"

void agent_template_prepare(struct agent *a);
void template_resume_handle(struct agent *a, uint64_t id, const Cocoon__TemplateResumeRequest *req);
