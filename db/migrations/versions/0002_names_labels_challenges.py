"""Case-insensitive players, model labels on guesses, class challenges.

- player.name_key (db.names.player_key): names that differ only by case become one player;
  an older database may hold such pairs, so their games move to the earliest spelling.
- guess.label: the model's name people read ("MobileNetV2 · CNN").
- challenge, and game.challenge_id.

Columns are only added (no table is rebuilt): on SQLite a rebuild drops the old table,
and with foreign keys on that would cascade into its games.

Revision ID: 0002
"""
import sqlalchemy as sa
from alembic import op

from db.names import player_key

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "challenge",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(8), nullable=False, unique=True),
        sa.Column("map_name", sa.String(200), nullable=False),
        sa.Column("rounds", sa.Integer(), nullable=False),
        sa.Column("timer_seconds", sa.Integer(), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("rounds >= 1", name="challenge_rounds_positive"),
        sa.CheckConstraint("timer_seconds IS NULL OR timer_seconds > 0", name="challenge_timer_positive"),
    )
    if op.get_bind().dialect.name == "sqlite":  # SQLite adds a reference only inline, in raw SQL
        op.execute("ALTER TABLE game ADD COLUMN challenge_id INTEGER REFERENCES challenge (id)")
    else:
        op.add_column("game", sa.Column("challenge_id", sa.Integer(), sa.ForeignKey("challenge.id"), nullable=True))
    op.create_index("ix_game_challenge_player", "game", ["challenge_id", "player_id"])
    op.add_column("guess", sa.Column("label", sa.String(200), nullable=True))
    op.add_column("player", sa.Column("name_key", sa.String(128), nullable=True))
    _fill_name_keys()
    op.create_index("ix_player_name_key", "player", ["name_key"], unique=True)


def _fill_name_keys() -> None:
    """Key every player; merge players whose names differ only by case into the first one."""
    bind = op.get_bind()
    player = sa.table("player", sa.column("id", sa.Integer), sa.column("name", sa.String),
                      sa.column("name_key", sa.String))
    game = sa.table("game", sa.column("player_id", sa.Integer))
    first_by_key: dict[str, int] = {}
    for player_id, name in bind.execute(sa.select(player.c.id, player.c.name).order_by(player.c.id)).all():
        key = player_key(name)
        keeper = first_by_key.setdefault(key, player_id)
        if keeper == player_id:
            bind.execute(player.update().where(player.c.id == player_id).values(name_key=key))
        else:
            bind.execute(game.update().where(game.c.player_id == player_id).values(player_id=keeper))
            bind.execute(player.delete().where(player.c.id == player_id))
