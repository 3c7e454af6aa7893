"""ClimbIQ's recommendations: pure functions of the climber's grade, no I/O, deterministic
(the same input always gives the same output), so that tests can assert on them.

Grades are on the V scale, V0 to V17.
"""

import re

GRADE = re.compile(r"^V(1[0-7]|[0-9])$")
PHASES = 5


def grade_number(grade):
    """'V5' -> 5; ValueError for anything that is not V0..V17."""
    match = GRADE.match(grade or "")
    if not match:
        raise ValueError(f"grade must be a V-scale grade from V0 to V17; got {grade!r}")
    return int(match.group(1))


def v(n):
    return f"V{min(max(n, 0), 17)}"


def session_phases(grade):
    """The five phases of one training session for a climber who tops out at `grade`
    (an int), in order: what GET /api/recommendations/stream sends, one event each."""
    strength = (
        f"Limit bouldering: 3 problems at {v(grade)}, 5 attempts each, 3 min rest"
        if grade < 4
        else "Hangboard: 6 hangs of 10 s on a 20 mm edge, 3 min rest"
    )
    phases = [
        ("warm-up", 15, f"Easy traverses and mobility, then 4 problems at {v(grade - 3)}"),
        ("technique", 20, f"Silent feet and flagging drills on {v(grade - 2)}"),
        ("strength", 25 if grade >= 4 else 20, strength),
        ("power-endurance", 20, f"4x4: four problems at {v(grade - 2)}, four times, 4 min rest"),
        ("cool-down", 10, "Easy climbing, then forearm and shoulder stretches"),
    ]
    return [
        {"phase": n, "of": PHASES, "name": name, "minutes": minutes, "recommendation": text}
        for n, (name, minutes, text) in enumerate(phases, start=1)
    ]


FOCUS = ("limit bouldering", "power endurance", "technique and volume")


def weekly_plan(climber, grade_label, sessions_per_week):
    """What a job computes (POST /api/jobs, done by the worker): a week of sessions."""
    grade = grade_number(grade_label)
    sessions = [
        {
            "session": n,
            "focus": FOCUS[(n - 1) % len(FOCUS)],
            "minutes": sum(p["minutes"] for p in session_phases(grade)),
        }
        for n in range(1, sessions_per_week + 1)
    ]
    return {
        "climber": climber,
        "grade": v(grade),
        "target_grade": v(grade + 1),
        "sessions_per_week": sessions_per_week,
        "sessions": sessions,
        "phases": [p["name"] for p in session_phases(grade)],
    }
