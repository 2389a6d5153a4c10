"""Who is who on every screen: one label and one colour per player.

The person is blue; a model is named by its backbone's display name and family
("MobileNetV2 · CNN", geoai.labels) and coloured by its family (transformer orange, CNN
purple), so the same opponent looks the same on the scoreboard, the maps and their
legend, the tables, the leaderboard and the models page. The truth is green.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from db.models import PERSON

# Streamlit's own palette (light theme), so `:blue[...]` text in a metric or caption has
# exactly the colour of the same player on the map.
STREAMLIT_COLOURS = {"blue": (59, 130, 246), "orange": (224, 104, 43), "violet": (155, 93, 229),
                     "green": (7, 148, 100), "red": (217, 74, 87), "gray": (110, 110, 120)}
PERSON_COLOUR = STREAMLIT_COLOURS["blue"]
TRUTH_COLOUR = STREAMLIT_COLOURS["green"]
FAMILY_COLOURS = {"transformer": STREAMLIT_COLOURS["orange"], "cnn": STREAMLIT_COLOURS["violet"]}
# Colours for opponents whose family is unknown, or a second one of a family.
SPARE_COLOURS = (STREAMLIT_COLOURS["red"], STREAMLIT_COLOURS["gray"])
COLOUR_NAMES = {rgb: name for name, rgb in STREAMLIT_COLOURS.items()}


@dataclass(frozen=True)
class Identity:
    """How one player is shown: `label` in text, `colour` (RGB) on maps, `dot` in text."""
    who: str  # PERSON or the model bundle's name (what games store)
    label: str
    colour: tuple[int, int, int]

    @property
    def markdown(self) -> str:
        """The label after a dot in the player's colour, as Streamlit markdown (metric labels,
        captions); markdown characters in the label are escaped."""
        name = COLOUR_NAMES.get(self.colour, "gray")
        escaped = "".join("\\" + c if c in "\\`*_{}[]()#+-.!:<>|~$" else c for c in self.label)
        return f":{name}[●] {escaped}"

    @property
    def css(self) -> str:
        """CSS for a table cell naming this player (pandas Styler)."""
        r, g, b = self.colour
        return f"color: rgb({r}, {g}, {b}); font-weight: 600"

    @property
    def rgba(self) -> tuple[int, int, int, int]:
        return (*self.colour, 255)


TRUTH = Identity("truth", "Where the photo was taken", TRUTH_COLOUR)


def identities(person_name: str, opponents: Iterable) -> dict[str, Identity]:
    """PERSON first, then each opponent (anything with .name, .label and .family, such as
    app.players.OpponentInfo) in order; labels are made unique if two would read alike."""
    result = {PERSON: Identity(PERSON, person_name, PERSON_COLOUR)}
    used_colours = {PERSON_COLOUR}
    spare = iter(SPARE_COLOURS)
    seen_labels = {person_name.casefold()}
    for opponent in opponents:
        colour = FAMILY_COLOURS.get(str(getattr(opponent, "family", "")).lower())
        if colour is None or colour in used_colours:
            colour = next((c for c in spare if c not in used_colours), SPARE_COLOURS[-1])
        used_colours.add(colour)
        label = str(getattr(opponent, "label", None) or opponent.name)
        if label.casefold() in seen_labels:
            label = f"{label} ({opponent.name})"
        seen_labels.add(label.casefold())
        result[opponent.name] = Identity(opponent.name, label, colour)
    return result


def styled_players(frame, column: str, by_label: Mapping[str, Identity]):
    """A pandas Styler of `frame` whose `column` (player labels) is written in each
    player's colour; pass its result to st.table / st.dataframe."""
    return frame.style.map(lambda label: by_label[label].css if label in by_label else "", subset=[column])


def label_of(who: str, known: Mapping[str, Identity], person_name: str | None = None) -> str:
    """The readable name of a stored player id (a bundle name, or PERSON)."""
    if who in known:
        return known[who].label
    if who == PERSON and person_name:
        return person_name
    return who


__all__ = ["FAMILY_COLOURS", "Identity", "PERSON_COLOUR", "TRUTH", "TRUTH_COLOUR", "identities", "label_of", "styled_players"]
