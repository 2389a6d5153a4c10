"""The play session (guess, timer, save), games kept for reloads, who-is-who (labels and
colours), the map specs (great-circle arcs, framing across the antimeridian, country
names) and what the map component accepts from the browser. No Streamlit run here."""
from __future__ import annotations

import json
import math
import random
from types import SimpleNamespace

import pytest
from geopy.distance import great_circle as geopy_great_circle

from app.borders import borders_json, load_borders
from app.components.guess_map import _guess_of
from app.country_labels import build_labels, label_point, labels_json, load_labels
from app.game import GameError, Place
from app.identity import FAMILY_COLOURS, PERSON_COLOUR, identities, styled_players
from app.live_games import LiveGames, is_game_id, new_game_id
from app.maps import Bounds
from app.session import Phase, PlaySession, check_rounds, check_timer
from app.views import WORLD_FRAME, Marker, frame_of, great_circle, play_deck, result_deck, result_frame
from db.models import PERSON
from db.names import InvalidPlayerName
from geoai.countries import country_codes

PLACES = [Place(f"p{i}", 45.0 + i * 0.1, 15.0 + i * 0.1, (f"/x/p{i}_0.jpg",)) for i in range(8)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def exact(place):
    return {"beit": (place.lat, place.lon)}


# -- the session ---------------------------------------------------------------------------
def test_guess_result_next_finish_and_save_once():
    play = PlaySession(problem_of=lambda place: None)
    play.start("  Ana ", "m", 421.0, PLACES, ["beit"], rounds=2, game_id=new_game_id(), rng=random.Random(0))
    assert play.phase is Phase.GUESSING and play.game.player_name == "Ana" and play.remaining_s() is None
    with pytest.raises(GameError, match="click the map"):
        play.confirm(None, exact)
    first_key = play.map_key
    result = play.confirm((45.123456, 15.654321), exact)
    assert play.phase is Phase.RESULT and result.guesses["beit"].points == 5000
    assert (result.guesses[PERSON].lat, result.guesses[PERSON].lon) == (45.123456, 15.654321)
    with pytest.raises(GameError, match="no round waiting"):
        play.confirm((45.0, 15.0), exact)  # a second Guess for the same round
    play.next_round()
    assert play.map_key != first_key and play.game_id in play.map_key
    play.confirm((45.0, 15.0), exact)
    assert play.phase is Phase.FINISHED
    saved = []
    assert play.save(lambda record: saved.append(record) or 7) == 7
    assert play.save(lambda record: saved.append(record) or 8) == 7
    assert len(saved) == 1 and saved[0].winner == "beit"


def test_bad_names_rounds_and_timers_are_refused_with_a_message():
    with pytest.raises(InvalidPlayerName):
        PlaySession(problem_of=lambda place: None).start("<script>", "m", 421.0, PLACES, [])
    for rounds in (0, 21, 999, -1, 2.5, "many", None):
        with pytest.raises(GameError, match="Rounds must be"):
            check_rounds(rounds)
    assert check_rounds(20) == 20 and check_rounds(1.0) == 1
    for seconds in (5, 9, 601, 10_000, -10, "soon", 30.5):
        with pytest.raises(GameError, match="round timer must be"):
            check_timer(seconds)
    assert check_timer(0) is None and check_timer(10) == 10 and check_timer(600) == 600
    play = PlaySession(problem_of=lambda place: None)
    with pytest.raises(GameError, match="Rounds must be"):
        play.start("Ana", "m", 421.0, PLACES, [], rounds=0)
    assert play.game is None and play.phase is Phase.SETUP


def test_timer_runs_out_person_scores_zero_models_still_play():
    clock = FakeClock()
    play = PlaySession(clock=clock, problem_of=lambda place: None)
    play.start("Ana", "m", 421.0, PLACES, ["beit"], rounds=3, timer_s=30)
    assert play.remaining_s() == 30
    clock.now += 12
    assert play.remaining_s() == 18 and not play.out_of_time()
    truth = play.game.current_place
    clock.now += 20  # 2 s past the clock: within the grace a guess still counts
    result = play.confirm((truth.lat, truth.lon), exact)
    assert result.guesses[PERSON].points == 5000 and not result.guesses[PERSON].timed_out

    play.next_round()
    assert play.remaining_s() == 30  # every round gets the whole time
    truth = play.game.current_place
    clock.now += 60
    assert play.remaining_s() == 0 and play.out_of_time()
    result = play.confirm((truth.lat, truth.lon), exact)  # too late, even though exact
    assert result.guesses[PERSON].points == 0 and result.guesses[PERSON].timed_out
    assert result.guesses["beit"].points == 5000

    play.next_round()
    result = play.time_up(None, exact, fallback=(45.5, 15.5))  # the map's timer, no pin placed
    assert result.guesses[PERSON].points == 0 and play.timeout_without_pin
    assert (result.guesses[PERSON].lat, result.guesses[PERSON].lon) == (45.5, 15.5)
    assert result.guesses["beit"].points == 5000 and play.phase is Phase.FINISHED
    record = play.game.to_record()
    assert [g.points for r in record.rounds for g in r.guesses if g.who == PERSON] == [5000, 0, 0]


def test_time_up_needs_a_timer():
    play = PlaySession(problem_of=lambda place: None)
    play.start("Ana", "m", 421.0, PLACES, [], rounds=1)
    with pytest.raises(GameError, match="no round timer"):
        play.time_up((45.0, 15.0), exact, fallback=(0.0, 0.0))


# -- games kept for reloads ----------------------------------------------------------------
def test_live_games_lru_ttl_and_ids():
    clock = FakeClock()
    games = LiveGames(capacity=2, ttl_s=100, clock=clock)
    a, b, c = new_game_id(), new_game_id(), new_game_id()
    assert len({a, b, c}) == 3 and all(is_game_id(i) for i in (a, b, c))
    games.put(a, "A")
    games.put(b, "B")
    assert games.get(a) == "A"  # a is now the most recently used
    games.put(c, "C")
    assert games.get(b) is None and games.get(a) == "A" and games.get(c) == "C" and len(games) == 2
    clock.now += 101
    assert games.get(a) is None  # expired
    for bad in ("", "../../etc", "A" * 17, None, 5, "a b c d e f g h i"):
        assert games.get(bad) is None
    with pytest.raises(ValueError):
        games.put("not an id", "X")
    games.drop(c)
    assert games.get(c) is None


# -- who is who ----------------------------------------------------------------------------
def test_each_player_one_label_and_one_colour():
    opponents = [SimpleNamespace(name="beit-grid", label="BEiT-base · transformer", family="transformer"),
                 SimpleNamespace(name="resnet-grid", label="ResNet-50 · CNN", family="cnn"),
                 SimpleNamespace(name="odd", label="", family="")]
    who = identities("Ana", opponents)
    assert list(who) == [PERSON, "beit-grid", "resnet-grid", "odd"]
    assert [w.label for w in who.values()] == ["Ana", "BEiT-base · transformer", "ResNet-50 · CNN", "odd"]
    assert who[PERSON].colour == PERSON_COLOUR and who["beit-grid"].colour == FAMILY_COLOURS["transformer"]
    assert who["resnet-grid"].colour == FAMILY_COLOURS["cnn"]
    assert len({w.colour for w in who.values()}) == 4  # never two players in one colour
    assert who[PERSON].markdown == ":blue[●] Ana" and who["resnet-grid"].markdown.startswith(":violet[●]")
    # the same opponents give the same identities on every page
    assert identities("Ana", opponents) == who
    # a second transformer gets its own colour and a label that tells it apart
    twins = identities("Ana", opponents[:1] * 1 + [SimpleNamespace(name="beit-b", label="BEiT-base · transformer",
                                                                      family="transformer")])
    assert twins["beit-b"].colour != twins["beit-grid"].colour and twins["beit-b"].label != twins["beit-grid"].label


def test_player_names_are_coloured_in_tables():
    import pandas as pd

    who = identities("Ana", [SimpleNamespace(name="r", label="ResNet-50 · CNN", family="cnn")])
    frame = pd.DataFrame({"player": ["Ana", "ResNet-50 · CNN"], "points": [10, 20]})
    html = styled_players(frame, "player", {i.label: i for i in who.values()}).to_html()
    r, g, b = who["r"].colour
    assert f"rgb({r}, {g}, {b})" in html and "rgb(59, 130, 246)" in html


def test_tables_escape_names_colour_players_and_format_numbers():
    import pandas as pd

    from app import formatting
    from app.tables import html_table
    from table_support import read_tables

    hostile = "<script>alert(1)</script> & *me*"
    who = identities(hostile, [SimpleNamespace(name="r", label="ResNet-50 · CNN", family="cnn")])
    frame = pd.DataFrame({"player": [hostile, "ResNet-50 · CNN"], "distance (km)": [12.345, 4583.2],
                          "points": [4900, 12]})
    html = html_table(frame, {"distance (km)": formatting.km_number, "points": formatting.points},
                      {i.label: i for i in who.values()})
    assert "<script>" not in html and "&lt;script&gt;" in html  # a name is text, never markup
    r, g, b = who["r"].colour
    assert f"color: rgb({r}, {g}, {b})" in html and "color: rgb(59, 130, 246)" in html
    read = read_tables(html)[0]
    assert list(read["player"]) == [hostile, "ResNet-50 · CNN"]
    assert list(read["distance (km)"]) == [12.3, 4583] and list(read["points"]) == [4900, 12]


# -- map specs -------------------------------------------------------------------------------
def test_great_circle_arcs_follow_the_sphere_and_cross_the_antimeridian():
    zagreb, new_york = (45.815, 15.982), (40.71, -74.01)
    path = great_circle(zagreb, new_york)
    assert path[0] == [15.982, 45.815] and path[-1][1] == pytest.approx(40.71, abs=1e-4)
    assert (path[-1][0] + 180) % 360 - 180 == pytest.approx(-74.01, abs=1e-4)
    # every point lies on the great circle: the distances through it add up
    total = geopy_great_circle(zagreb, new_york).km
    for lon, lat in path[1:-1]:
        via = geopy_great_circle(zagreb, (lat, lon)).km + geopy_great_circle((lat, lon), new_york).km
        assert via == pytest.approx(total, rel=1e-6)
    assert max(lat for _, lat in path) > 50  # bows north of both ends, as great circles do
    fiji, samoa = (-17.7, 178.0), (-13.8, -172.0)
    across = great_circle(fiji, samoa)
    steps = [abs(b[0] - a[0]) for a, b in zip(across, across[1:])]
    assert max(steps) < 1 and across[-1][0] == pytest.approx(188.0, abs=1e-3)  # continuous, not a jump


def test_result_frame_holds_every_marker_even_across_the_antimeridian():
    markers = [Marker("a", -17.7, 178.0, (0, 0, 0)), Marker("b", -13.8, -172.0, (0, 0, 0))]
    south, west, north, east = result_frame(markers)
    assert west > east  # crosses 180: a 10-degree frame, not the whole world
    assert (east - west) % 360 < 15 and south < -17.7 and north > -13.8
    far = [Marker("a", 45, 15, (0, 0, 0)), Marker("b", -33.9, 151.2, (0, 0, 0)), Marker("c", 40.7, -74, (0, 0, 0))]
    assert result_frame(far) == WORLD_FRAME
    near = result_frame([Marker("t", 45.0, 16.0, (0, 0, 0))] * 2)  # everyone exactly right
    assert near[2] - near[0] >= 0.2 - 1e-9


def test_round_frame_is_the_maps_area_or_the_world():
    croatia = Bounds(42.8, 13.75, 46.44, 19.12)
    south, west, north, east = frame_of(croatia)
    assert south < 42.8 and west < 13.75 and north > 46.44 and east > 19.12 and north - south < 6
    assert frame_of(Bounds(-40, -120, 65, 175)) == WORLD_FRAME


def test_play_and_result_decks():
    croatia = Bounds(42.8, 13.75, 46.44, 19.12)
    region = (40.0, 11.0, 49.0, 22.0)
    spec = json.loads(play_deck(croatia, borders_json(region), labels_json(region)).to_json())
    layers = {layer["id"]: layer for layer in spec["layers"]}
    assert not any(layer.get("pickable") for layer in spec["layers"])  # clicks are read in the browser
    assert layers["land"]["data"]["type"] == "FeatureCollection" and layers["land"]["wrapLongitude"] is True
    names = {d["n"] for d in layers["country-names"]["data"]}
    assert {"Croatia", "Slovenia", "Bosnia and Herz."} <= names and "Brazil" not in names
    assert layers["country-names"]["fontSettings"]["sdf"] is True  # the white outline needs SDF
    assert set("Côte") <= set(layers["country-names"]["characterSet"])
    assert spec["views"][0]["repeat"] is True  # the world wraps around
    assert 42.8 < spec["initialViewState"]["latitude"] < 46.44

    truth = Marker("truth", 45.0, 16.0, (7, 148, 100, 255))
    guesses = [Marker("Ana", 44.0, 15.0, (59, 130, 246, 255)), Marker("CNN", 46.0, 18.0, (155, 93, 229, 255))]
    result = json.loads(result_deck(croatia, "{}", "[]", truth, guesses).to_json())
    layers = {layer["id"]: layer for layer in result["layers"]}
    arcs = layers["arcs"]["data"]
    assert [a["c"] for a in arcs] == [[59, 130, 246], [155, 93, 229]]
    assert arcs[0]["path"][0] == [15.0, 44.0] and arcs[0]["path"][-1] == pytest.approx([16.0, 45.0], abs=1e-4)
    assert [p["p"] for p in layers["markers"]["data"]] == [[15.0, 44.0], [18.0, 46.0], [16.0, 45.0]]
    assert "labels" not in layers  # a legend names the markers, no text on the map


# -- country names ---------------------------------------------------------------------------
def test_country_label_points_lie_inside_their_countries():
    labels = {label["name"]: label for label in load_labels()}
    assert len(labels) > 200
    checked = {"Croatia": "HR", "France": "FR", "Brazil": "BR", "Russia": "RU", "Chile": "CL", "Italy": "IT",
               "Japan": "JP", "Norway": "NO", "Indonesia": "ID", "Fiji": "FJ"}
    lats = [labels[n]["lat"] for n in checked]
    lons = [labels[n]["lon"] for n in checked]
    assert list(country_codes(list(zip(lats, lons)))) == list(checked.values())
    assert labels["Russia"]["area"] > labels["France"]["area"] > labels["Croatia"]["area"]


def test_committed_labels_match_the_borders():
    rebuilt = {label["name"]: label for label in build_labels(load_borders())}
    committed = {label["name"]: label for label in load_labels()}
    assert rebuilt.keys() == committed.keys()
    assert all(math.isclose(rebuilt[n]["lat"], committed[n]["lat"], abs_tol=1e-3) for n in committed)


def test_label_point_of_a_ring_shaped_country_avoids_the_hole():
    square = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]
    hole = [[3, 3], [7, 3], [7, 7], [3, 7], [3, 3]]
    lon, lat = label_point([square, hole])
    assert not (3 <= lon <= 7 and 3 <= lat <= 7) and 0 < lon < 10 and 0 < lat < 10


# -- what the browser may send ---------------------------------------------------------------
def test_only_real_coordinates_are_accepted_from_the_browser():
    assert _guess_of({"lat": 45.5, "lon": -179.9, "round": "x"}) == (45.5, -179.9)
    for bad in (None, "45,16", {"lat": 45}, {"lat": "nan", "lon": 1}, {"lat": 91, "lon": 0},
                {"lat": 0, "lon": 180.5}, {"lat": [1], "lon": 2}, {"lat": float("inf"), "lon": 0}):
        assert _guess_of(bad) is None
