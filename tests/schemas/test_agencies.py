"""The agency registry: agencies by abbreviation, code or full name; an unknown one suggests the closest."""

from __future__ import annotations

import pytest

from awardwatch.schemas import agencies as registry
from awardwatch.schemas.agencies import AgencyRef, agency_ref, find, resolve, suggestions
from awardwatch.schemas.errors import InputError


@pytest.mark.parametrize("text, abbreviation", [
    ("ICE", "ICE"), ("ice", "ICE"), (" 7012 ", "ICE"), ("070", "DHS"),
    ("U.S. Immigration and Customs Enforcement", "ICE"),
    ("immigration and customs enforcement", "ICE"),
    ("IMMIGRATION & CUSTOMS ENFORCEMENT", "ICE"),
    ("US Customs and Border Protection", "CBP"),
    ("United States Coast Guard", "USCG"),
    ("Department of Homeland Security", "DHS"),
    ("department of justice", "DOJ"),
    ("Federal Bureau of Investigation", "FBI"),
    ("federal prison system / bureau of prisons", "BOP"),
    ("Bureau of Alcohol Tobacco Firearms and Explosives Acquisition and Property Management Division", "ATF"),
    ("General Services Administration", "GSA"), ("047", "GSA"), ("federal acquisition service", "FAS"), ("4740", "PBS"),
])
def test_an_agency_by_abbreviation_code_or_full_name(text, abbreviation):
    assert find(text) is registry.AGENCIES[abbreviation]
    assert resolve([text]) == [registry.AGENCIES[abbreviation]]
    a = registry.AGENCIES[abbreviation]
    assert agency_ref(text) == AgencyRef(a.code, a.tier, abbreviation)


def test_names_are_unique_once_compared():
    assert len(registry.BY_NAME) == len(registry.AGENCIES) and len(registry.BY_CODE) == len(registry.AGENCIES)


def test_the_default_is_dhs():
    assert resolve(None) == resolve([]) == [registry.AGENCIES["DHS"]]


def test_a_department_of_gsa_gives_its_archive_code():
    assert registry.toptier_codes(resolve(["FAS", "ICE", "PBS"])) == ["047", "070"]


@pytest.mark.parametrize("text, message", [
    ("Imigration and Customs", "; did you mean ICE (U.S. Immigration and Customs Enforcement)?"),
    ("Federal Bureau of Investigations", "did you mean FBI (Federal Bureau of Investigation) or "),  # closest first
    ("Homeland Security", "did you mean DHS (Department of Homeland Security)?"),
    ("customs", "did you mean ICE (U.S. Immigration and Customs Enforcement) or CBP (U.S. Customs and Border "
                "Protection)?"),
    ("ICEE", "did you mean ICE (U.S. Immigration and Customs Enforcement)?"),
    ("Secret Servise", "did you mean USSS (U.S. Secret Service)?"),
])
def test_an_unknown_name_suggests_the_closest_agencies_in_one_line(text, message):
    for attempt in (lambda: resolve([text]), lambda: agency_ref(text)):
        with pytest.raises(InputError) as info:
            attempt()
        assert str(info.value).startswith(f"unknown agency {text!r}; ") and message in str(info.value)
        assert "\n" not in str(info.value)


def test_the_whole_line_of_a_mistyped_name():
    with pytest.raises(InputError) as info:
        resolve(["Imigration and Customs"])
    assert str(info.value) == ("unknown agency 'Imigration and Customs'; "
                               "did you mean ICE (U.S. Immigration and Customs Enforcement)?")


def test_with_nothing_close_the_error_names_what_is_accepted():
    with pytest.raises(InputError,
                       match=r"^unknown agency 'NASA'; known: DHS, ICE, .*, PBS \(or their codes or full names\)$"):
        resolve(["NASA"])
    with pytest.raises(InputError, match=r"^unknown agency 'Border Patrol'; use an abbreviation \(DHS, .*\), a full"):
        agency_ref("Border Patrol")
    assert suggestions("") == []


def test_codes_outside_the_registry_are_still_report_filters():
    assert agency_ref("097") == AgencyRef("097", "toptier", "097")
    assert agency_ref("97as") == AgencyRef("97AS", "subtier", "97AS")
    with pytest.raises(InputError):
        resolve(["097"])  # a feed needs the exact name, which only the registry has
