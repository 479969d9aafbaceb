"""hcctme.pl.resistance_profile's therapy labels."""

from __future__ import annotations

from hcctme.pl._profile import _short_therapies


def test_therapy_labels_keep_each_name_with_its_tier():
    """Sweep 57: splitting at " (" cut labels inside their [tier, trial] brackets ("tepotinib [III, tepotinib vs
    sorafenib, randomised phase 1b/2 +2") and dropped the tier of names with a parenthesis ("plerixafor")."""
    kb_text = ("cabozantinib [I, CELESTIAL]; tepotinib [III, tepotinib vs sorafenib, randomised phase 1b/2 "
               "(Qin 2019)]; plerixafor (AMD3100) [III, Chen2015]")
    assert _short_therapies(kb_text) == "cabozantinib [I], tepotinib [III] +1"
    assert _short_therapies(kb_text, n=3) == "cabozantinib [I], tepotinib [III], plerixafor [III]"
    assert _short_therapies("") == "-" and _short_therapies("an agent") == "an agent"


def test_therapy_labels_mark_a_discontinued_therapy():
    """Sweep 59a: tivantinib (phase 3 trials negative, discontinued) read as a plain tier-III suggestion."""
    kb_text = ("cabozantinib [I, CELESTIAL | approved_hcc]; tivantinib [III, tivantinib randomised phase 2 | "
               "discontinued | negative: METIV-HCC, JET-HCC]")
    assert _short_therapies(kb_text) == "cabozantinib [I], tivantinib [III, discontinued]"
