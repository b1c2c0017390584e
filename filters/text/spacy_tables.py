"""spaCy 3.8's English tokenizer exceptions and sentencizer punctuation, as data for `words`.

The special cases are generated the way spaCy's `lang/en/tokenizer_exceptions.py` (with the
language-independent `lang/tokenizer_exceptions.py`) generates them: contractions split ("can't" ->
"ca" "n't"), abbreviations and emoticons kept whole, every apostrophe form also with a typographic
one. The sentence-final characters are `Sentencizer.default_punct_chars`.
"""

from __future__ import annotations


def _special_cases() -> dict[str, tuple[str, ...]]:
    exc: dict[str, tuple[str, ...]] = {}

    def both(word: str) -> tuple[str, str]:
        return (word, word.title())

    for orth in both("i"):
        exc.update({orth + "'m": (orth, "'m"), orth + "m": (orth, "m"),
                    orth + "'ma": (orth, "'m", "a"), orth + "ma": (orth, "m", "a")})
    for pron in ("i", "you", "he", "she", "it", "we", "they"):
        for orth in both(pron):
            exc.update({orth + "'ll": (orth, "'ll"), orth + "ll": (orth, "ll"),
                        orth + "'ll've": (orth, "'ll", "'ve"), orth + "llve": (orth, "ll", "ve"),
                        orth + "'d": (orth, "'d"), orth + "d": (orth, "d"),
                        orth + "'d've": (orth, "'d", "'ve"), orth + "dve": (orth, "d", "ve")})
    for pron in ("i", "you", "we", "they"):
        for orth in both(pron):
            exc.update({orth + "'ve": (orth, "'ve"), orth + "ve": (orth, "ve")})
    for pron in ("you", "we", "they"):
        for orth in both(pron):
            exc.update({orth + "'re": (orth, "'re"), orth + "re": (orth, "re")})
    for pron in ("he", "she", "it"):
        for orth in both(pron):
            exc.update({orth + "'s": (orth, "'s"), orth + "s": (orth, "s")})
    for word, number in (("who", ""), ("what", ""), ("when", ""), ("where", ""), ("why", ""), ("how", ""),
                         ("there", ""), ("that", "sing"), ("this", "sing"), ("these", "plur"),
                         ("those", "plur")):
        for orth in both(word):
            if number != "plur":
                exc.update({orth + "'s": (orth, "'s"), orth + "s": (orth, "s")})
            exc.update({orth + "'ll": (orth, "'ll"), orth + "ll": (orth, "ll"),
                        orth + "'ll've": (orth, "'ll", "'ve"), orth + "llve": (orth, "ll", "ve")})
            if number != "sing":
                exc.update({orth + "'re": (orth, "'re"), orth + "re": (orth, "re"),
                            orth + "'ve": (orth, "'ve"), orth + "ve": (orth, "ve")})
            exc.update({orth + "'d": (orth, "'d"), orth + "d": (orth, "d"),
                        orth + "'d've": (orth, "'d", "'ve"), orth + "dve": (orth, "d", "ve")})
    for verb in ("ca", "could", "do", "does", "did", "had", "may", "might", "must", "need", "ought", "sha",
                 "should", "wo", "would"):
        for orth in both(verb):
            exc.update({orth + "n't": (orth, "n't"), orth + "nt": (orth, "nt"),
                        orth + "n't've": (orth, "n't", "'ve"), orth + "ntve": (orth, "nt", "ve")})
    for verb in ("could", "might", "must", "should", "would"):
        for orth in both(verb):
            exc.update({orth + "'ve": (orth, "'ve"), orth + "ve": (orth, "ve")})
    for verb in ("ai", "are", "is", "was", "were", "have", "has", "dare"):
        for orth in both(verb):
            exc.update({orth + "n't": (orth, "n't"), orth + "nt": (orth, "nt")})
    for word in ("doin", "goin", "nothin", "nuthin", "ol", "somethin", "lovin", "havin"):
        for orth in both(word):
            exc.update({orth: (orth,), orth + "'": (orth + "'",)})
    for word in ("em", "ll", "nuff"):
        exc.update({word: (word,), "'" + word: ("'" + word,)})
    for hour in range(1, 13):
        for period in ("a.m.", "am", "p.m.", "pm"):
            exc[f"{hour}{period}"] = (str(hour), period)
    exc.update({
        "y'all": ("y'", "all"), "yall": ("y", "all"), "how'd'y": ("how", "'d", "'y"),
        "How'd'y": ("How", "'d", "'y"), "not've": ("not", "'ve"), "notve": ("not", "ve"),
        "Not've": ("Not", "'ve"), "Notve": ("Not", "ve"), "cannot": ("can", "not"),
        "Cannot": ("Can", "not"), "gonna": ("gon", "na"), "Gonna": ("Gon", "na"), "gotta": ("got", "ta"),
        "Gotta": ("Got", "ta"), "let's": ("let", "'s"), "Let's": ("Let", "'s"), "c'mon": ("c'm", "on"),
        "C'mon": ("C'm", "on"),
    })
    for unit in "cfkCFK":
        exc[f"°{unit}."] = ("°", unit, ".")
    whole = (
        "'S 's \u2018S \u2018s and/or w/o 're 'Cause 'cause 'cos 'Cos 'coz 'Coz 'cuz 'Cuz 'bout ma'am Ma'am "
        "o'clock O'clock Mt. Ak. Ala. Apr. Ariz. Ark. Aug. Calif. Colo. Conn. Dec. Del. Feb. Fla. Ga. Ia. "
        "Id. Ill. Ind. Jan. Jul. Jun. Kan. Kans. Ky. La. Mar. Mass. Mich. Minn. Miss. N.C. N.D. N.H. N.J. "
        "N.M. N.Y. Neb. Nebr. Nev. Nov. Oct. Okla. Ore. Pa. S.C. Sep. Sept. Tenn. Va. Wash. Wis. 'd a.m. "
        "Adm. Bros. co. Co. Corp. D.C. Dr. e.g. E.g. E.G. Gen. Gov. i.e. I.e. I.E. Inc. Jr. Ltd. Md. Messrs. "
        "Mo. Mont. Mr. Mrs. Ms. p.m. Ph.D. Prof. Rep. Rev. Sen. St. vs. v.s. "
        # spaCy's language-independent exceptions: single letters with a period, emoticons.
        "' \\\") <space> '' C++ a. b. c. d. e. f. g. h. i. j. k. l. m. n. o. p. q. r. s. t. u. v. w. x. y. z. "
        "ä. ö. ü. \\t \\n \u2014 "
        ":) :-) :)) :-)) :))) :-))) (: (-: =) (= :] :-] [: [-: [= =] :o) (o: :} :-} 8) 8-) (-8 ;) ;-) (; (-; "
        ":( :-( :(( :-(( :((( :-((( ): )-: =( >:( :') :'-) :'( :'-( :/ :-/ =/ =| :| :-| ]= =[ :1 :P :-P :p "
        ":-p :O :-O :o :-o :0 :-0 :() >:o :* :-* :3 :-3 =3 :> :-> :X :-X :x :-x :D :-D ;D ;-D =D xD XD xDD "
        "XDD 8D 8-D ^_^ ^__^ ^___^ >.< >.> <.< ._. ;_; -_- -__- v.v V.V v_v V_V o_o o_O O_o O_O 0_o o_0 0_0 "
        "o.O O.o O.O o.o 0.0 o.0 0.o @_@ <3 <33 <333 </3 (^_^) (-_-) (._.) (>_<) (*_*) (¬_¬) ಠ_ಠ ಠ︵ಠ (ಠ_ಠ) "
        "¯\\(ツ)/¯ (╯°□°）╯︵┻━┻ ><(((*>"
    )
    for orth in whole.split():
        exc[orth] = (orth,)
    for excluded in ("Ill", "ill", "Its", "its", "Hell", "hell", "Shell", "shell", "Shed", "shed", "were",
                     "Were", "Well", "well", "Whore", "whore"):
        exc.pop(excluded, None)
    # Every exception with an apostrophe also exists with a typographic one (spaCy's `expand_exc`).
    for orth, pieces in list(exc.items()):
        if "'" in orth:
            exc[orth.replace("'", "’")] = tuple(p.replace("'", "’") for p in pieces)
    return exc


SPECIAL_CASES: dict[str, tuple[str, ...]] = _special_cases()
"""Whole chunk -> its tokens."""

SENTENCE_END_CHARS: frozenset[str] = frozenset(
    "!.?։؟۔܀܁܂߹।॥၊။።፧፨᙮᜵᜶᠃᠉᥄᥅᪨᪩᪪᪫᭚᭛᭞᭟᰻᰼᱾᱿‼‽⁇⁈⁉⸮⸼꓿꘎꘏꛳꛷꡶꡷꣎꣏꤯꧈꧉꩝꩞꩟꫰꫱꯫﹒﹖﹗！．？"
    "𐩖𐩗𑁇𑁈𑂾𑂿𑃀𑃁𑅁𑅂𑅃𑇅𑇆𑇍𑇞𑇟𑈸𑈹𑈻𑈼𑊩𑑋𑑌𑗂𑗃𑗉𑗊𑗋𑗌𑗍𑗎𑗏𑗐𑗑𑗒𑗓𑗔𑗕𑗖𑗗𑙁𑙂𑜼𑜽𑜾𑩂𑩃𑪛𑪜𑱁𑱂𖩮𖩯𖫵𖬷𖬸𖭄𛲟𝪈｡。"
)
"""spaCy's `Sentencizer.default_punct_chars`: a token that is one of these ends a sentence."""
