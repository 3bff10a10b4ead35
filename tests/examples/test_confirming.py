"""The reference confirmation client follows one confirmation until it is placed, and
stops clearly when it is replaced or takes too long."""

from __future__ import annotations

from typing import Any

import pytest

from examples.confirming import CONFIRMED, CONFIRMING, StillPlacing, until_confirmed


def _reply(state: str, confirmation_id: str = "c1", placed: int = 0) -> dict[str, Any]:
    return {
        "confirmation": {"confirmation_id": confirmation_id, "state": state, "placed_count": placed}
    }


async def test_it_returns_the_confirmation_once_the_background_placing_ends() -> None:
    pages = [_reply(CONFIRMING, placed=400), _reply(CONFIRMED, placed=1000)]
    asked = 0

    async def page() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        return pages.pop(0)

    done = await until_confirmed(page, _reply(CONFIRMING), every=0)
    assert (done["state"], done["placed_count"], asked) == (CONFIRMED, 1000, 2)


async def test_a_confirmation_placed_before_the_answer_needs_no_listing() -> None:
    async def page() -> dict[str, Any]:
        raise AssertionError("not asked")

    assert (await until_confirmed(page, _reply(CONFIRMED)))["state"] == CONFIRMED


async def test_another_confirmation_in_its_place_is_an_error_not_a_success() -> None:
    async def page() -> dict[str, Any]:
        return _reply(CONFIRMED, confirmation_id="c2")

    with pytest.raises(RuntimeError, match="replaced"):
        await until_confirmed(page, _reply(CONFIRMING), every=0)


async def test_it_gives_up_after_the_time_allowed() -> None:
    async def page() -> dict[str, Any]:
        return _reply(CONFIRMING)

    with pytest.raises(StillPlacing):
        await until_confirmed(page, _reply(CONFIRMING), within=0.05, every=0.01)
