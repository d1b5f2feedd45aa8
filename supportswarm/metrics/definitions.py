"""What every dashboard figure means, word for word as the page shows it (issue 5: definitions are the product)."""

from __future__ import annotations

COHORT = (
    "Questions are counted by when they were asked: a window holds the questions asked in it, and each "
    "question's response, resolution and swarm count whenever they happened, up to now. Percentiles are "
    "PostgreSQL's percentile_cont (linear interpolation between the two nearest values) over the questions that "
    "have the event; questions still waiting are left out of them and show in n, the rates and the backlog. A "
    "mean is never shown: one forgotten question would move it by hours."
)

DEFINITIONS: list[tuple[str, str, str]] = [
    ("questions", "Questions",
     "Questions asked in the window (a QUESTION_ASKED event)."),
    ("asks", "Asks",
     "Questions asked plus asks closed by a suggested existing answer (SUGGESTION_ACCEPTED) in the window: a "
     "deflected ask never becomes a question, so it is added here."),
    ("time_to_first_response", "Time to first response",
     "From the ask to the first answer, comment or swarm message by someone other than the asker. With a "
     "responder filter: to the first response by a responder of that type (staff: staff, leads and admins; "
     "expert: experts; community: other customers). The type is the responder's role when they responded."),
    ("time_to_first_staff_or_expert_response", "Time to first staff-or-expert response",
     "From the ask to the first response by staff, a lead, an admin or an expert."),
    ("time_to_resolution", "Time to resolution",
     "From the ask to the first resolution: an accepted answer, or the question's swarm resolved. Questions closed "
     "as duplicates are left out."),
    ("resolution_rate", "Resolution rate",
     "Questions of the window resolved so far / questions of the window not closed as duplicates (duplicates are "
     "folded into their original's thread)."),
    ("deflection_rate", "Deflection rate",
     "Asks closed by a suggested existing answer / all asks, both in the window."),
    ("swarm_rate", "Swarm rate",
     "Questions of the window that needed a swarm (their own, or linked to an incident swarm) / questions of "
     "the window."),
    ("swarms", "Swarms",
     "Swarms opened in the window. Time to join: from opening to the first join by someone other than the asker. "
     "Size: distinct people who joined, the asker included. Duration: from opening to resolution (resolved "
     "swarms only). Incidents: swarms opened for an emergent problem."),
    ("knowledge_reuse", "Knowledge reuse",
     "Times an existing answer solved a later ask (ANSWER_REUSED events) in the window."),
    ("backlog", "Unresolved backlog",
     "Questions asked before the end of the window and not resolved or closed as duplicates at that moment, "
     "whenever they were asked, by how long they had been waiting."),
    ("top_contributors", "Top contributors",
     "Ranked by customers helped in the window: accepted answers on someone else's question, later asks solved "
     "by reusing their answer, and resolved swarms they joined (not as the asker). First responses are shown "
     "but do not rank: contribution, not task counts."),
    ("tag", "Tag filter",
     "Questions with the tag now. A deflection or reuse counts under the tags of the question whose answer was "
     "reused (a deflected ask has no question of its own). The responder filter does not apply to deflections, "
     "swarms or the backlog."),
    ("emergent", "Emergent problems",
     "Every few minutes, the new unresolved questions of the last 60 minutes are grouped by the similarity of "
     "their meaning (cosine of all-MiniLM-L6-v2 embeddings >= 0.65, calibrated on BANKING77 paraphrases). A group "
     "of 5 or more shows here; one click opens one incident swarm that links all its questions."),
]
