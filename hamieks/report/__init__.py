"""The plan for people and CI: the text table (`plan_text`), the SVG picture (`plan_svg`),
settings that are valid but probably unwanted (`risks`), and the stack outputs that are pure
functions of the settings (`outputs`).

May import: top level, config, kube, scheduling, modelfit.
"""
