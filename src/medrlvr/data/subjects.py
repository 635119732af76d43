"""Subjects and subject groups, as data.

MMLU's four categories follow its authors' subject -> subcategory -> category map (hendrycks/test,
categories.py); CMMLU's five follow haonan-li/CMMLU src/categories.py. The medical groups are the subsets
that Open-Medical-R1 breaks out (its Fig. 3 radar charts) and that MIRAGE/MedRAG call MMLU-Med.
"""

from __future__ import annotations

# subject -> category, per benchmark.
MMLU_SUBJECT2CATEGORY: dict[str, str] = {
    **dict.fromkeys(
        "abstract_algebra astronomy college_biology college_chemistry college_computer_science college_mathematics "
        "college_physics computer_security conceptual_physics electrical_engineering elementary_mathematics "
        "high_school_biology high_school_chemistry high_school_computer_science high_school_mathematics "
        "high_school_physics high_school_statistics machine_learning".split(),
        "stem",
    ),
    **dict.fromkeys(
        "formal_logic high_school_european_history high_school_us_history high_school_world_history "
        "international_law jurisprudence logical_fallacies moral_disputes moral_scenarios philosophy prehistory "
        "professional_law world_religions".split(),
        "humanities",
    ),
    **dict.fromkeys(
        "econometrics high_school_geography high_school_government_and_politics high_school_macroeconomics "
        "high_school_microeconomics high_school_psychology human_sexuality professional_psychology "
        "public_relations security_studies sociology us_foreign_policy".split(),
        "social_sciences",
    ),
    **dict.fromkeys(
        "anatomy business_ethics clinical_knowledge college_medicine global_facts human_aging management marketing "
        "medical_genetics miscellaneous nutrition professional_accounting professional_medicine virology".split(),
        "other",
    ),
}

CMMLU_SUBJECT2CATEGORY: dict[str, str] = {
    **dict.fromkeys(
        "anatomy astronomy college_actuarial_science college_engineering_hydrology college_mathematics "
        "college_medical_statistics computer_science conceptual_physics electrical_engineering "
        "elementary_mathematics genetics high_school_biology high_school_chemistry high_school_mathematics "
        "high_school_physics machine_learning virology".split(),
        "stem",
    ),
    **dict.fromkeys(
        "arts college_law global_facts international_law jurisprudence logical marxist_theory philosophy "
        "professional_law world_history world_religions".split(),
        "humanities",
    ),
    **dict.fromkeys(
        "business_ethics college_education economics education high_school_geography journalism management "
        "marketing professional_accounting professional_psychology public_relations security_study sociology".split(),
        "social_science",
    ),
    **dict.fromkeys(
        "agronomy clinical_knowledge college_medicine computer_security elementary_information_and_technology "
        "food_science human_sexuality legal_and_moral_basis nutrition professional_medicine sports_science".split(),
        "other",
    ),
    # CMMLU's "China specific" subjects belong to no other category in its authors' map.
    **dict.fromkeys(
        "ancient_chinese chinese_civil_service_exam chinese_driving_rule chinese_food_culture chinese_foreign_policy "
        "chinese_history chinese_literature chinese_teacher_qualification construction_project_management "
        "elementary_chinese elementary_commonsense ethnology high_school_politics modern_chinese "
        "traditional_chinese_medicine".split(),
        "china_specific",
    ),
}

MMLU_PRO_CATEGORIES = [
    "biology", "business", "chemistry", "computer science", "economics", "engineering", "health", "history",
    "law", "math", "other", "philosophy", "physics", "psychology",
]  # fmt: skip


def _by_category(subject2category: dict[str, str]) -> dict[str, tuple[str, ...]]:
    groups: dict[str, list[str]] = {}
    for subject, category in subject2category.items():
        groups.setdefault(category, []).append(subject)
    return {category: tuple(sorted(subjects)) for category, subjects in groups.items()}


# benchmark -> group name -> subjects. A group name can be passed wherever a subject name can.
SUBJECT_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "mmlu": {
        "medical": (
            "anatomy", "clinical_knowledge", "college_biology", "college_medicine", "medical_genetics",
            "professional_medicine", "high_school_biology", "nutrition", "virology",
        ),
        **_by_category(MMLU_SUBJECT2CATEGORY),
    },
    "cmmlu": {
        "medical": (
            "anatomy", "clinical_knowledge", "college_medicine", "genetics", "nutrition",
            "traditional_chinese_medicine", "virology", "high_school_biology", "college_medical_statistics",
            "professional_medicine",
        ),
        **_by_category(CMMLU_SUBJECT2CATEGORY),
    },
    # MMLU-Pro's subject is its category; "health" is the medical one (Med-RLVR's out-of-distribution test).
    "mmlu_pro": {"medical": ("health",), "life_sciences": ("biology", "health", "psychology")},
}  # fmt: skip

# The category each subject is reported under (per-category charts, Fig. 4 to 15 of Open-Medical-R1).
SUBJECT2CATEGORY: dict[str, dict[str, str]] = {
    "mmlu": MMLU_SUBJECT2CATEGORY,
    "cmmlu": CMMLU_SUBJECT2CATEGORY,
    "mmlu_pro": {c: c for c in MMLU_PRO_CATEGORIES},
}


def expand_subjects(benchmark: str, subjects: str | list[str] | tuple[str, ...] | None) -> set[str] | None:
    """Subject names and group names (``"medical"``, ``"stem"``) -> the set of subject names, or None for all."""
    if subjects is None:
        return None
    if isinstance(subjects, str):
        subjects = [s.strip() for s in subjects.split(",") if s.strip()]
    groups = SUBJECT_GROUPS.get(benchmark, {})
    out: set[str] = set()
    for name in subjects:
        out.update(groups.get(name, (name,)))
    return out
