"""The schema every database had before migrations: players, games, rounds, guesses.

A database created by that version has these four tables and no alembic_version table;
`python -m db upgrade` recognises it, stamps it with this revision and upgrades from here.

Revision ID: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "player",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(32), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "game",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("player_id", sa.Integer(), sa.ForeignKey("player.id", ondelete="CASCADE"), nullable=False),
        sa.Column("map_name", sa.String(200), nullable=False),
        sa.Column("map_size_km", sa.Float(), nullable=False),
        sa.Column("rounds_played", sa.Integer(), nullable=False),
        sa.Column("person_points", sa.Integer(), nullable=False),
        sa.Column("winner", sa.String(400), nullable=False),
        sa.Column("person_won", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_game_map_points", "game", ["map_name", "person_points"])
    op.create_table(
        "round",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("game_id", sa.Integer(), sa.ForeignKey("game.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("location_id", sa.String(400), nullable=False),
        sa.Column("image", sa.String(1000), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.UniqueConstraint("game_id", "number"),
    )
    op.create_table(
        "guess",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("round_id", sa.Integer(), sa.ForeignKey("round.id", ondelete="CASCADE"), nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("distance_km", sa.Float(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.UniqueConstraint("round_id", "who"),
        sa.CheckConstraint("distance_km >= 0", name="distance_non_negative"),
        sa.CheckConstraint("points >= 0 AND points <= 5000", name="points_in_range"),
    )
    op.create_index("ix_guess_who", "guess", ["who"])
