"""Names for generated customers and contacts, shared by the emulators' generators."""

from __future__ import annotations

from typing import Final

FIRST_NAMES: Final = (
    "Amelia", "Ben", "Carmen", "Dmitri", "Elena", "Farah", "George", "Hana", "Ibrahim", "Julia",
    "Kenji", "Laura", "Marcus", "Nadia", "Oscar", "Priya", "Quinn", "Rosa", "Samuel", "Tara",
    "Umar", "Valeria", "Wei", "Ximena", "Yusuf", "Zoe", "Alan", "Bianca", "Chloe", "Diego",
    "Esther", "Felix", "Grace", "Hugo", "Iris", "Jamal", "Keira", "Liam", "Maya", "Noah",
)  # fmt: skip
LAST_NAMES: Final = (
    "Anderson", "Baker", "Chen", "Dubois", "Evans", "Fischer", "Garcia", "Hughes", "Ito",
    "Jensen", "Kowalski", "Lopez", "Murphy", "Nguyen", "Okafor", "Patel", "Quintero", "Rossi",
    "Schmidt", "Tanaka", "Usman", "Vargas", "Walsh", "Xu", "Yilmaz", "Zimmerman", "Brooks",
    "Carter", "Diaz", "Foster", "Gupta", "Hansen", "Iqbal", "Kim", "Larsen", "Moreau",
)  # fmt: skip
BUSINESS_WORDS: Final = (
    "Plumbing", "Bakery", "Landscaping", "Dental", "Auto Repair", "Consulting", "Roofing",
    "Catering", "Florist", "Printing", "Electric", "Fitness", "Veterinary", "Hardware",
)  # fmt: skip
BUSINESS_SUFFIXES: Final = ("LLC", "Inc.", "Co.", "& Sons", "Group", "Ltd.")
