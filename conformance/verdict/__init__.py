"""The judges: the verdict vocabulary (outcomes), and for each kind of case the comparison entry by
entry against its tolerances, arbitrated by the truth."""
