"""The caller named in the AWS User-Agent, found by walking frames."""

from __future__ import annotations

import sys

from s3br_provider.hooks.sdk_cache import calling_class_name


class CopyingOperator:
    def execute(self) -> str | None:
        return helper()


class Outer:
    def execute(self) -> str | None:
        return CopyingOperator().execute()


def helper() -> str | None:
    return calling_class_name(sys._getframe(), "execute")


def test_names_the_class_whose_method_is_on_the_stack() -> None:
    assert CopyingOperator().execute() == "CopyingOperator"


def test_the_nearest_frame_wins() -> None:
    assert Outer().execute() == "CopyingOperator"


def test_none_outside_any_such_method() -> None:
    assert helper() is None


def test_a_plain_function_of_that_name_is_not_a_method() -> None:
    def execute() -> str | None:
        return helper()

    assert execute() is None
