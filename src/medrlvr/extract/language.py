"""The language rules of answer extraction, as data: cue words, negations, joining words, clause ends, and the
answer frames that the strict grammar of the training rewards allows around an option.

The languages are those of the benchmarks medrlvr loads (English; Chinese: CMMLU, MedQA's Chinese sets) and the
common European ones a multilingual policy writes in (German, French, Spanish, Italian, Portuguese, Dutch). A policy
under GRPO finds whatever pays, so a negation the reader cannot see is a reward for "nicht B" (issue 21).

Words of spaced scripts are matched whole and case-insensitively; Chinese has no spaces, so its markers are read
anywhere in a span (``不是B``). Every pattern built here is an alternation of literals with no nested quantifier:
one pass, no backtracking.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# Kana, CJK ideographs and Hangul are written without spaces: a Latin letter next to them stands alone ("选B").
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
WORD = rf"[^\W{CJK}]"  # a word character of a spaced script

# --- negation and elimination: a span that holds one names no answer ---------------------------------------

NEGATIONS: dict[str, tuple[str, ...]] = {
    "en": (
        "not", "no", "never", "none", "neither", "nor", "cannot", r"\w+n['’]t", "isnt", "arent", "cant", "dont",
        "doesnt", "wont", "except", "excepting", "excluding", "excludes?", "excluded", r"rul(?:e|es|ed|ing)\s+out",
        r"(?:any(?:thing|one)?|every(?:thing)?|all)\s+but", r"other\s+than", r"rather\s+than", r"instead\s+of",
        "besides", r"incorrect\w*", r"wrong\w*", "untrue", "invalid", "inaccurate", "unlikely", r"impossib\w*",
        r"reject\w*", r"disprov\w*",
    ),
    "de": (
        "nicht", r"kein\w*", "nie", "niemals", "weder", "außer", "ausser", "ausgenommen", r"ausschlie\w*",
        "ausgeschlossen", r"auszuschlie\w*", r"unrichtig\w*", r"inkorrekt\w*", r"unwahrscheinlich\w*",
        r"unmöglich\w*", "statt", "anstatt", r"ungültig\w*",
    ),
    "fr": (
        "pas", "non(?!-)", "jamais", r"aucun\w*", "ni", "sauf", r"excepté\w*", "hormis", "faux", r"erron\w*",
        "improbable", r"exclu\w*", r"élimin\w*", r"écart\w*", r"plutôt\s+que", r"au\s+lieu\s+de",
    ),
    "es": (
        "nunca", "jamás", r"ningun\w*", "ningún", "excepto", "salvo", r"(?:tod[oa]s?|cualquiera)\s+menos",
        r"erróne\w*", "imposible", r"descart\w*", r"en\s+(?:lugar|vez)\s+de",
    ),
    "it": (
        "mai", r"nessun\w*", "né", "tranne", "eccetto", "fuorché", r"sbagliat\w*", r"errat\w*", "improbabile",
        r"esclu\w*", r"scartat\w*", r"invece\s+di",
    ),
    "pt": (
        "não", "nao", r"nenhum\w*", "nem", "exceto", r"qualquer\s+um\s+menos", r"errad\w*", r"incorret\w*",
        "improvável", "impossível", r"descart\w*", r"em\s+vez\s+de", r"ao\s+invés\s+de",
    ),
    "nl": (
        "niet", "geen", "nooit", "noch", "behalve", "uitgezonderd", r"fout\w*", r"onjuist\w*", "onwaar",
        r"onwaarschijnlijk\w*", r"onmogelijk\w*", "uitgesloten", "uitsluiten", r"in\s+plaats\s+van",
    ),
    # shared by several: false, falsch, falso, falsa; eliminate, eliminar, eliminare
    "*": (r"fals\w*", r"elimin\w*"),
}  # fmt: skip
# Chinese negation markers, read anywhere. 不 starts many medical terms that negate nothing (不良 adverse, 不典型
# atypical, 不稳定 unstable, 功能不全 insufficiency, 不孕 infertile ...): those are not negations. 非, 别, 除 and
# 无 negate only in the forms listed (非常 is "very", 鉴别 "differential", 切除 "resection", 无菌 "sterile").
NEGATIONS_CJK = (
    "不(?!良|典型|稳定|穩定|全(?!对|對|正)|孕|育|适|適|规则|規則|对称|對稱|完全|足|均|自主|随意|隨意|耐受|明原因)",
    "没|沒|否|勿|错(?!构)|錯(?!構)|有误|有誤|假的",
    r"[并並]非|非\s*[A-J(（]|别(?=\s*[选選是])|別(?=\s*[选選是])",
    r"除了|除外|除去|除非|排除|除\s*[A-J(（]|以外|之外",
    "无关|無關|无法|無法|[并並][无無未]|未必",
)  # fmt: skip

# --- joining words: an answer that stops on one was cut off in the middle of a hedge ("Answer: B oder") -------

JOINERS: dict[str, tuple[str, ...]] = {
    "en": ("or", "and", "nor", "vs", "versus", "maybe", "perhaps", "possibly", "either"),
    "de": ("oder", "und", "bzw", "beziehungsweise", "vielleicht", "eventuell", "entweder"),
    "fr": ("ou", "et", "peut-être", "soit"),
    "es": ("o", "u", "y", "quizás", "quizá", r"tal\s+vez"),
    "it": ("oppure", "e", "forse"),
    "pt": ("ou", "e", "talvez"),
    "nl": ("of", "en", "misschien", "ofwel"),
}  # fmt: skip
JOINERS_CJK = ("或", "或者", "还是", "還是", "和", "与", "與", "及", "以及", "可能", "也许", "也許", "或许", "或許")  # fmt: skip

# --- clause ends: a cue's answer is read up to the end of its first clause ------------------------------------

# A reason ends the answer clause: what follows is explanation ("The answer is B because A is not ...")
REASONS: dict[str, tuple[str, ...]] = {
    "en": (
        "because", "since", r"as(?!\s+(?:well|follows)\b)", "given", "due", "which", "whereas", "explanation",
        "rationale", "reason",
    ),
    "de": ("weil", "denn", "begründung", "erklärung"),
    "fr": ("parce", "puisque", "explication"),
    "es": ("porque", r"puesto\s+que", "explicación"),
    "it": ("perché", "poiché", "spiegazione"),
    "pt": ("porque", "explicação"),
    "nl": ("omdat", "want", "uitleg"),
}  # fmt: skip
REASONS_CJK = ("因为", "因為", "由于", "由於", "解析", "理由")  # fmt: skip
# Words that carry an answer on past a full stop ("B. Or C.", "B. Oder C."): the next sentence is read with it
CONTINUES: dict[str, tuple[str, ...]] = {
    "en": (
        "or", "maybe", "perhaps", "possibly", "probably", "alternatively", "and", "also", "but", "though",
        "although", "actually", "wait", "hmm", "otherwise", "either", "nor", "else",
    ),
    "de": ("oder", "vielleicht", "eventuell", "möglicherweise", "wahrscheinlich", "auch", "aber", "und", "doch"),
    "fr": ("ou", "peut-être", "aussi", "mais", "et", "sinon", r"ou\s+bien"),
    "es": ("o", "quizás", "quizá", r"tal\s+vez", "también", "pero", "y"),
    "it": ("o", "oppure", "forse", "anche", "ma", "e"),
    "pt": ("ou", "talvez", "também", "mas", "e"),
    "nl": ("of", "misschien", "ook", "maar", "en"),
}  # fmt: skip
CONTINUES_CJK = ("或", "还是", "還是", "也", "可能", "也许", "也許", "但", "不过", "不過", "而且", "以及", "和")  # fmt: skip
# Verbs that make the next sentence a statement about an option ("B. C is also possible", "B. C ist auch möglich")
ABOUT_VERBS: dict[str, tuple[str, ...]] = {
    "en": (
        "or", "and", "is", "are", "was", "were", "be", "can", "cannot", "could", "should", "would", "must", "might",
        "may", "will", "also", "too", "seems", "appears", "has", "does", r"\w+n['’]t",
    ),
    "de": ("ist", "sind", "wäre", "kann", "könnte", "sollte", "muss", "scheint"),
    "fr": ("est", "sont", "serait", "peut", "pourrait", "semble"),
    "es": ("es", "son", "sería", "puede", "podría", "parece"),
    "it": ("è", "sono", "sarebbe", "può", "potrebbe", "sembra"),
    "pt": ("é", "são", "seria", "pode", "poderia", "parece"),
    "nl": ("is", "zijn", "zou", "kan", "kunnen", "lijkt"),
}  # fmt: skip
ABOUT_VERBS_CJK = ("是", "也", "亦", "可能", "可以", "或", "不", "没", "沒", "错", "錯", "对", "對", "正确", "正確")  # fmt: skip

# --- cues: "the answer is", "Answer:" -----------------------------------------------------------------------

# One regex per cue word, run only when its word is in the text: a scan costs about 2 ms per 100 KB even where
# nothing matches, and an alternation of cue words tried at every position cost 7 ms.
ANSWER_WORDS = {  # word pattern -> a literal it holds (lowercase), to look for before scanning
    "answer": "answer",
    "antwort": "antwort",
    r"r[eé]\u0301?ponse": "ponse",
    "respuesta": "respuesta",
    "risposta": "risposta",
    "resposta": "resposta",
    "antwoord": "antwoord",
}
# "is" after the cue word, with the adjectives that Romance languages put between ("la respuesta correcta es")
_ADJECTIVE = r"(?:\s+(?i:correct[ae]?|corretta|correta|exacte|juste|final[e]?|juiste|richtige|definitiva))?"
IS = (
    r"\s+(?i:is|would\s+be|should\s+be|must\s+be|ist|lautet|wäre|est|serait|es|sería|è|sarebbe|é|seria|"
    r"zou\s+zijn)\b\s*:?[ \t]*"
)
JUDGED_WORDS = ("option", "choice")  # "the correct option is A", but not "this option is wrong"
JUDGED = re.compile(r"(?i:correct|right|best|final)\s+$")
# Chinese: 答案是 / 答案为 ("the answer is"), 正确选项是 ("the correct option is"), 故选 / 应选 ("so choose"); not
# after a negation (答案不是 never matches; 不应选B is "B should not be chosen").
ANSWER_IS_CJK = {
    r"答案\s*(?:应该|應該|应|應|就|确定|確定)?\s*(?:是|为|為)\s*[:：]?\s*": ("答案"),
    r"(?:正确|正確|最佳|最终|最終)的?[选選]项\s*(?:是|为|為)\s*[:：]?\s*": ("选项", "選项", "選項", "选項"),
    r"(?<![不别別非未])(?:故|应|應|因此|所以|答案)\s*(?:选|選)(?:择|擇)?\s*": ("选", "選"),
}
ANSWER_COLON_WORDS = (*ANSWER_WORDS, r"(?:正确|正確|最终|最終|参考|參考)?答案")
_COLON_BEFORE = r"(?i:final\s+|correct\s+|finale\s+|richtige\s+|endgültige\s+|juiste\s+|definitieve\s+)?"


def _words(table: dict[str, tuple[str, ...]]) -> str:
    """The words of every language, longest first (so "or" does not end "oder" early), as one alternation."""
    words = dict.fromkeys(w for lang in table.values() for w in lang)
    return "|".join(sorted(words, key=len, reverse=True))


def _cjk(words: tuple[str, ...]) -> str:
    return "|".join(sorted(words, key=len, reverse=True))


# A reason: what follows it explains the answer ("B because ...")
REASON = re.compile(r"(?i:\b(?:" + _words(REASONS) + r")\b)|" + _cjk(REASONS_CJK))
NEGATION = re.compile(r"(?i)\b(?:" + _words(NEGATIONS) + r")\b|" + "|".join(NEGATIONS_CJK))
# An answer that stops on a joiner was cut off in the middle of a hedge ("Answer: A or", "B 或")
DANGLING = re.compile(r"(?i:\b(?:" + _words(JOINERS) + r")|" + _cjk(JOINERS_CJK) + r"|[/&+])[^\w\x00]*$")
_CONTINUE = _words(CONTINUES)
_ABOUT = _words(ABOUT_VERBS)
# Where a cue's answer clause ends: a reason, or a full stop that starts a new sentence. What follows a full stop
# carries the answer on unless it is a capital, a digit or Chinese ("A. or C", "A. (C)", "A. vs B"), and so does
# a new sentence that opens with a joining word or with an option that a verb or a full stop follows ("A. Or
# C.", "A. C is also possible", "A. C.", "B。或C", "B。A是错的").
CLAUSE_END = re.compile(
    r"(?i:\b(?:" + _words(REASONS) + r")\b)|" + _cjk(REASONS_CJK) + "|"
    r"(?:[.!?;](?=\s|$)|。)(?!\s*(?:[^A-Z0-9\x00\s" + CJK + r"]"
    r"|(?i:" + _CONTINUE + r")\b|" + _cjk(CONTINUES_CJK) + "|"
    r"(?:[A-J]|\x00\d+\x00|\d[\d,.]*)(?:\s*(?:[^\w\s\x00]|$)|\s+(?i:" + _ABOUT + "|" + _CONTINUE + r"|vs|versus|nor|"
    r"plus)\b|\s*(?:" + _cjk(ABOUT_VERBS_CJK) + r"))))"
)


class Cue(NamedTuple):
    pattern: re.Pattern
    judged: bool  # counts only after a judging word ("the correct option is")
    gates: tuple[str, ...]  # scanned only when the lowercased text holds one of these


def answer_is_cues() -> tuple[Cue, ...]:
    """The "answer is" cues of every language."""
    plain = [Cue(re.compile(f"(?i:{w})" + _ADJECTIVE + IS), False, (gate,)) for w, gate in ANSWER_WORDS.items()]
    judged = [Cue(re.compile(f"(?i:{w})" + IS), True, (w,)) for w in JUDGED_WORDS]
    cjk = [Cue(re.compile(p), False, gates) for p, gates in ANSWER_IS_CJK.items()]
    return (*plain, *cjk, *judged)


ANSWER_COLON = Cue(
    re.compile(
        r"(?m)^[ \t*#>_【\[-]*"
        + _COLON_BEFORE
        + "(?i:"
        + "|".join(ANSWER_COLON_WORDS)
        + r")"
        + _ADJECTIVE
        + r"[ \t*_】\]]*[:：][ \t]*"
    ),
    False,
    (*ANSWER_WORDS.values(), "答案"),
)


# --- answer frames: what the strict grammar of the training rewards allows around one option ------------------

# What may stand before an option (:mod:`medrlvr.extract.grammar`), matched at the start of a span, case-insensitively,
# on NFKC text whose white space is one space ("：" is ":"). A frame that ends on a verb may take a colon; a noun
# frame needs one ("Answer: B", not "Answer B").
FRAMES_IS: dict[str, str] = {
    "en": r"(?:the |my )?(?:(?:correct|right|best|final) )?(?:answer|option|choice) (?:is|would be|should be|must be)",
    "de": r"(?:die )?(?:(?:richtige|korrekte|endgültige) )?antwort (?:ist|lautet|wäre)",
    "fr": r"(?:la )?(?:bonne )?réponse(?: (?:correcte|exacte|juste|finale))? (?:est|serait)",
    "es": r"(?:la )?respuesta(?: (?:correcta|final))? (?:es|sería)",
    "it": r"(?:la )?risposta(?: (?:corretta|giusta|finale))? (?:è|sarebbe)",
    "pt": r"(?:a )?resposta(?: (?:correta|certa|final))? (?:é|seria)",
    "nl": r"(?:het )?(?:(?:juiste|correcte) )?antwoord (?:is|zou zijn)",
}
FRAMES_COLON: dict[str, str] = {
    "en": r"(?:my |the )?(?:(?:correct|right|best|final) )?answer",
    "de": r"(?:(?:richtige|korrekte|endgültige) )?antwort",
    "fr": r"(?:bonne )?réponse(?: (?:correcte|finale))?",
    "es": r"respuesta(?: (?:correcta|final))?",
    "it": r"risposta(?: (?:corretta|finale))?",
    "pt": r"resposta(?: (?:correta|final))?",
    "nl": r"(?:(?:juiste|definitieve) )?antwoord",
}
# Chinese (CMMLU): 答案是 / 答案为 / 答案：("the answer is"), 正确选项是 ("the correct option is"), 故选 / 选 ("so
# choose"). 不应选B ("B should not be chosen") starts with 不, which no frame does.
FRAMES_CJK = (
    r"(?:正确|正確|最终|最終|参考|參考)?答案 ?(?:(?:应该|應該|应|應|就)? ?(?:是|为|為) ?:?|:)",
    r"(?:正确|正確|最佳|最终|最終)的?(?:选项|選項) ?(?:是|为|為) ?:?",
    r"(?:故|应|應|因此|所以|所以答案|答案)? ?(?:选|選)(?:择|擇)? ?:?",
)
# What may stand after an option: "A is correct", "B ist richtig", "B项" (item B), "B正确"
SUFFIXES: dict[str, str] = {
    "en": r"is (?:the )?(?:correct|right|best)(?: answer| option| choice)?|is the answer",
    "de": r"ist (?:richtig|korrekt|die richtige antwort)",
    "fr": r"est (?:correcte?|juste|la bonne réponse)",
    "es": r"es (?:correcta?|la respuesta correcta)",
    "it": r"è (?:corretta|giusta|la risposta corretta)",
    "pt": r"(?:é|está) (?:correta|certa|a resposta correta)",
    "nl": r"is (?:juist|correct|het juiste antwoord)",
}
SUFFIXES_CJK = (r"项|項|选项|選項", r"是?(?:正确|正確)(?:的|答案)?")
# Words that name an option by its letter: "option B", "Choice (a)", "选项B"
OPTION_WORDS = (
    "option", "choice", "letter", "opción", "opcion", "opzione", "opção", "opcao", "alternativa", "optie", "keuze",
    "lettre", "choix", "选项", "選項",
)  # fmt: skip

# --- strike-outs: a struck answer is withdrawn, read as "not" ---------------------------------------------------

# ~~B~~ (markdown), <del>, <strike>, LaTeX \sout \st \cancel, and combining strokes (B̶). <s>...</s> only as a pair
# inside one span: "</s>" alone is an end-of-sequence token that some decoders leave in the text.
STRIKE = re.compile(
    r"~~|<(?:del|strike)>|<s>(?=[^<]*</s>)|\\(?:sout|st|cancel|xcancel|bcancel|stkout)(?![A-Za-z])|[\u0334-\u0338]"
)
