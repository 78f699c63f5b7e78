"""The schema module is the contract between parsing and applying: it must match the binding."""
from apps.roster import schema

# Header rows of the OneRoster CSV binding 1.2.1, as the binding lists them.
SPEC_V12 = {
    "orgs": "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId",
    "academicSessions": "sourcedId,status,dateLastModified,title,type,startDate,endDate,"
    "parentSourcedId,schoolYear",
    "courses": "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,"
    "orgSourcedId,subjects,subjectCodes",
    "classes": "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,"
    "classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods",
    "users": "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,"
    "familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,"
    "userMasterIdentifier,preferredGivenName,preferredMiddleName,preferredFamilyName,"
    "primaryOrgSourcedId,pronouns",
    "roles": "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,"
    "orgSourcedId,userProfileSourcedId",
    "enrollments": "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,"
    "userSourcedId,role,primary,beginDate,endDate",
    "demographics": "sourcedId,status,dateLastModified,birthDate,sex,"
    "americanIndianOrAlaskaNative,asian,blackOrAfricanAmerican,"
    "nativeHawaiianOrOtherPacificIslander,white,demographicRaceTwoOrMoreRaces,"
    "hispanicOrLatinoEthnicity,countryOfBirthCode,stateOfBirthAbbreviation,cityOfBirth,"
    "publicSchoolResidenceStatus",
    "userProfiles": "sourcedId,status,dateLastModified,userSourcedId,profileType,vendorId,"
    "applicationId,description,credentialType,username,password",
    "categories": "sourcedId,status,dateLastModified,title,weight",
    "lineItems": "sourcedId,status,dateLastModified,title,description,assignDate,dueDate,"
    "classSourcedId,categorySourcedId,academicSessionSourcedId,resultValueMin,resultValueMax,"
    "schoolSourcedId",
    "results": "sourcedId,status,dateLastModified,lineItemSourcedId,studentSourcedId,"
    "scoreStatus,score,scoreDate,comment,textScore,classSourcedId,inProgress,incomplete,late,"
    "missing",
    "scoreScales": "sourcedId,status,dateLastModified,title,type,orgSourcedId,courseSourcedId,"
    "classSourcedId,scoreScaleValue",
}

REQUIRED_V12 = {
    "orgs": {"sourcedId", "name", "type"},
    "classes": {"sourcedId", "title", "courseSourcedId", "classType", "schoolSourcedId",
                "termSourcedIds"},
    "users": {"sourcedId", "enabledUser", "username", "givenName", "familyName"},
    "roles": {"sourcedId", "userSourcedId", "roleType", "role", "orgSourcedId"},
    "enrollments": {"sourcedId", "classSourcedId", "schoolSourcedId", "userSourcedId", "role"},
    "results": {"sourcedId", "lineItemSourcedId", "studentSourcedId", "scoreStatus",
                "scoreDate"},
}


def test_every_supported_entity_has_the_exact_v12_header_row():
    assert list(schema.ENTITIES) == [e for e in schema.ENTITIES if e in SPEC_V12]
    assert set(schema.ENTITIES) == set(SPEC_V12)
    for entity, header in SPEC_V12.items():
        assert ",".join(schema.SCHEMAS[entity].headers_v12) == header, entity


def test_required_columns_follow_the_binding():
    for entity, required in REQUIRED_V12.items():
        cols = schema.SCHEMAS[entity].columns
        assert {c.header for c in cols if c.required} == required, entity


def test_canonical_columns_are_snake_case_and_unique():
    for s in schema.SCHEMAS.values():
        names = s.column_names
        assert len(set(names)) == len(names)
        assert all(n == n.lower() and " " not in n for n in names)
        assert names[:3] == ("sourced_id", "status", "date_last_modified")


def test_v11_differences_are_described():
    users = schema.SCHEMAS["users"]
    assert "role" in users.headers_v11 and "orgSourcedIds" in users.headers_v11
    assert schema.SCHEMAS["roles"].headers_v11 is None
    assert "gradingPeriodSourcedId" in schema.SCHEMAS["lineItems"].headers_v11
    assert schema.SCHEMAS["results"].headers_v11[-1] == "comment"


def test_extensible_vocabularies_are_the_ones_the_binding_names():
    ext = {(s.name, c.header) for s in schema.SCHEMAS.values() for c in s.columns if c.allow_ext}
    assert ext == {
        ("orgs", "type"), ("academicSessions", "type"), ("classes", "classType"),
        ("roles", "role"), ("enrollments", "role"), ("demographics", "sex"),
        ("results", "scoreStatus"),
    }
