"""multistep_arith: one true equation per operation of the question, in its order.

The equations are those the external calculator finds (`calculator.find_equations`), so
the step checker, the equation filter and the decoder read the same text as arithmetic.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Optional

from cotdistill.text.calculator import binary_operation, find_equations, stated_matches


def check_multistep_arith(question: str, cot: str) -> Optional[str]:
    """One equation per operation of the question, in order, each true and starting from
    the previous result: "7 + 5 = 12. 12 - 3 = 9." (operands of + and * in either order).

    Words around the equations are free; an equation that is false, out of order, uses
    a number the question does not give at that step, is more than one operation, or is
    one too many is a wrong step.
    """
    from cotdistill.prepare.datasets.arithmetic import apply, parse_question

    parsed = parse_question(question)
    if parsed is None:
        return "cannot read the operations of the question"
    value, ops = parsed
    found = find_equations(cot)
    for k, (op, n) in enumerate(ops):
        if k >= len(found):
            return f"stops after {k} of {len(ops)} operations"
        equation = found[k]
        operation = binary_operation(equation.expression)
        if operation is None:
            return f"step {k + 1} computes {equation.expression}, not one operation"
        a, got_op, b = float(operation[0]), operation[1], float(operation[2])
        result = apply(value, op, n)
        if got_op != op:
            return f"step {k + 1} uses {got_op} where the question asks for {op}"
        if (a, b) != (value, n) and not (op in "+*" and (b, a) == (value, n)):
            return f"step {k + 1} computes {a:g} {got_op} {b:g}; the question gives {value} {op} {n}"
        if not stated_matches(equation.stated, Fraction(result), equation.percent_points):
            return f"step {k + 1} says {a:g} {got_op} {b:g} = {equation.stated}; it is {result}"
        value = result
    if len(found) > len(ops):
        return f"writes {len(found)} equations for {len(ops)} operations"
    return None
