#include "store/store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/fs.h"

namespace slipway {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kClockStart = 1'700'000'000'000;  // ManualClock's first instant

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "slipway_store_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/state.db";
  }
  void TearDown() override { EXPECT_TRUE(RemoveTree(dir_).ok()); }

  std::unique_ptr<Store> OpenStore() {
    auto store = Store::Open(path_, clock_);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return nullptr;
    return std::move(store).value();
  }

  // A project's production environment and one service in it.
  ServiceRecord MakeService(Store& store, const std::string& project, const std::string& name) {
    auto p = store.EnsureProject(project);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    auto env = store.GetEnvironment(p->id, "production");
    EXPECT_TRUE(env.ok()) << env.status().ToString();
    auto svc = store.EnsureService(p->id, env->id, name);
    EXPECT_TRUE(svc.ok()) << svc.status().ToString();
    return *svc;
  }

  // Sets PRAGMA user_version behind the Store's back, as a newer slipway would.
  void SetUserVersion(int version) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    std::string sql = "PRAGMA user_version=" + std::to_string(version);
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }

  std::string dir_;
  std::string path_;
  ManualClock clock_;
};

TEST_F(StoreTest, DomainsAreUniqueAcrossServicesAndRemovable) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ServiceRecord api = MakeService(*store, "demo", "api");
  ServiceRecord web = MakeService(*store, "demo", "web");
  EXPECT_EQ(store->GetProjectById(api.project_id)->name, "demo");
  DomainRecord d;
  d.service_id = api.id;
  d.host = "api.example.com";
  d.cert_path = "/etc/certs/api.pem";
  d.key_path = "/etc/certs/api.key";
  auto added = store->AddDomain(d);
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  EXPECT_EQ(added->created_at, kClockStart);
  EXPECT_EQ(added->cert_path, "/etc/certs/api.pem");

  d.service_id = web.id;
  auto taken = store->AddDomain(d);
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(taken.status().message().find("slipway domains remove api.example.com"),
            std::string::npos);

  DomainRecord w;
  w.service_id = web.id;
  w.host = "*.example.org";
  w.acme = true;
  ASSERT_TRUE(store->AddDomain(w).ok());
  EXPECT_EQ(store->ListDomains(0)->size(), 2u);
  ASSERT_EQ(store->ListDomains(web.id)->size(), 1u);
  EXPECT_TRUE(store->ListDomains(web.id)->front().acme);

  ASSERT_TRUE(store->RemoveDomain("api.example.com").ok());
  EXPECT_EQ(store->RemoveDomain("api.example.com").code(), StatusCode::kNotFound);
  store.reset();
  store = OpenStore();
  ASSERT_EQ(store->ListDomains(0)->size(), 1u);
  EXPECT_EQ(store->ListDomains(0)->front().host, "*.example.org");
}

TEST_F(StoreTest, GitSettingsAndPreviewBranchesAreKept) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto project = store->EnsureProject("shop");
  ASSERT_TRUE(project.ok());
  EXPECT_EQ(project->production_branch, "");
  EXPECT_EQ(project->preview_from, "");
  ASSERT_TRUE(store->SetProjectGitSettings(project->id, "trunk", "staging").ok());
  EXPECT_EQ(store->SetProjectGitSettings(999, "x", "").code(), StatusCode::kNotFound);

  auto preview = store->EnsureEnvironment(project->id, "feature-login");
  ASSERT_TRUE(preview.ok());
  EXPECT_EQ(preview->git_branch, "");
  ASSERT_TRUE(store->SetEnvironmentBranch(preview->id, "feature/login").ok());
  // One preview per branch: a second environment cannot take the same branch.
  auto other = store->EnsureEnvironment(project->id, "feature-login-2");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(store->SetEnvironmentBranch(other->id, "feature/login").code(),
            StatusCode::kAlreadyExists);
  ASSERT_TRUE(store->SetEnvironmentBranch(other->id, "").ok());  // many have none

  store.reset();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto again = store->GetProject("shop");
  EXPECT_EQ(again->production_branch, "trunk");
  EXPECT_EQ(again->preview_from, "staging");
  auto envs = store->ListEnvironments(again->id);
  ASSERT_TRUE(envs.ok());
  ASSERT_EQ(envs->size(), 3u);
  EXPECT_EQ((*envs)[0].git_branch, "");
  EXPECT_EQ((*envs)[1].name, "feature-login");
  EXPECT_EQ((*envs)[1].git_branch, "feature/login");
  EXPECT_EQ(store->GetEnvironmentById(preview->id)->git_branch, "feature/login");
}

TEST_F(StoreTest, EnsureCreatesOnceAndReturnsTheSameRows) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  EXPECT_GE(store->SchemaVersion(), 1);

  auto p1 = store->EnsureProject("shop");
  ASSERT_TRUE(p1.ok()) << p1.status().ToString();
  EXPECT_EQ(p1->name, "shop");
  EXPECT_EQ(p1->created_at, kClockStart);
  clock_.Advance(milliseconds(1000));
  auto p2 = store->EnsureProject("shop");
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ(p2->id, p1->id);
  EXPECT_EQ(p2->created_at, kClockStart) << "a second Ensure must not rewrite the row";

  auto prod = store->GetEnvironment(p1->id, "production");
  ASSERT_TRUE(prod.ok()) << prod.status().ToString();
  EXPECT_EQ(prod->project_id, p1->id);
  auto by_id = store->GetEnvironmentById(prod->id);
  ASSERT_TRUE(by_id.ok());
  EXPECT_EQ(by_id->name, "production");

  auto staging1 = store->EnsureEnvironment(p1->id, "staging");
  auto staging2 = store->EnsureEnvironment(p1->id, "staging");
  ASSERT_TRUE(staging1.ok() && staging2.ok());
  EXPECT_EQ(staging1->id, staging2->id);
  EXPECT_NE(staging1->id, prod->id);

  auto s1 = store->EnsureService(p1->id, prod->id, "web");
  auto s2 = store->EnsureService(p1->id, prod->id, "web");
  auto other_env = store->EnsureService(p1->id, staging1->id, "web");
  ASSERT_TRUE(s1.ok() && s2.ok() && other_env.ok()) << s1.status().ToString();
  EXPECT_EQ(s1->id, s2->id);
  EXPECT_NE(s1->id, other_env->id) << "services are unique per environment, not per project";
  EXPECT_EQ(s1->active_deployment_id, 0);
  EXPECT_EQ(s1->config_json, "");
  ASSERT_TRUE(store->EnsureService(p1->id, prod->id, "api").ok());

  auto found = store->FindService(prod->id, "web");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->id, s1->id);
  auto listed = store->ListServices(prod->id);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].name, "api");
  EXPECT_EQ((*listed)[1].name, "web");

  ASSERT_TRUE(store->EnsureProject("blog").ok());
  auto projects = store->ListProjects();
  ASSERT_TRUE(projects.ok());
  ASSERT_EQ(projects->size(), 2u);
  EXPECT_EQ((*projects)[0].name, "blog");
  EXPECT_EQ((*projects)[1].name, "shop");
}

TEST_F(StoreTest, MissingRowsAreNotFoundAndNamed) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  auto project = store->GetProject("nope");
  EXPECT_EQ(project.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(project.status().message(), "project nope not found");
  EXPECT_EQ(store->GetProjectById(42).status().message(), "project 42 not found");

  auto d = store->GetDeployment(12);
  EXPECT_EQ(d.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(d.status().message(), "deployment 12 not found");

  Status st = store->SetDeploymentStatus(12, kBuilding);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "deployment 12 not found");

  EXPECT_EQ(store->GetService(3).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->FindService(1, "web").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->GetRelease(4).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->GetEnvironmentById(5).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->CreateDeployment(77, "upload", "{}").status().message(), "service 77 not found");
  EXPECT_EQ(store->EnsureEnvironment(9, "staging").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->SetServiceConfig(3, "{}").code(), StatusCode::kNotFound);
  EXPECT_EQ(store->AddEvent(3, 0, "deploy.started", "x").code(), StatusCode::kNotFound);
  ReplicaRecord r;
  r.id = 40;
  r.deployment_id = 1;
  r.state = "running";
  EXPECT_EQ(store->UpsertReplica(r).status().code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, ServiceInAnotherProjectsEnvironmentIsRefused) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  auto a = store->EnsureProject("a");
  auto b = store->EnsureProject("b");
  ASSERT_TRUE(a.ok() && b.ok());
  auto b_prod = store->GetEnvironment(b->id, "production");
  ASSERT_TRUE(b_prod.ok());
  auto svc = store->EnsureService(a->id, b_prod->id, "web");
  EXPECT_EQ(svc.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(StoreTest, DeploymentLifecycleSetsTimesAndFinishesOnlyOnTerminalStatuses) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  ServiceRecord svc = MakeService(*store, "shop", "web");

  clock_.Advance(milliseconds(10));
  auto d = store->CreateDeployment(svc.id, "upload", R"({"replicas":1})");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->status, kQueued);
  EXPECT_EQ(d->service_id, svc.id);
  EXPECT_EQ(d->source, "upload");
  EXPECT_EQ(d->config_json, R"({"replicas":1})");
  EXPECT_EQ(d->created_at, kClockStart + 10);
  EXPECT_EQ(d->updated_at, kClockStart + 10);
  EXPECT_EQ(d->finished_at, 0);
  EXPECT_EQ(d->release_id, 0);

  const std::vector<std::string> in_progress = {kBuilding, kDeploying, kActive, kDraining};
  int64_t t = 10;
  for (const std::string& status : in_progress) {
    clock_.Advance(milliseconds(5));
    t += 5;
    ASSERT_TRUE(store->SetDeploymentStatus(d->id, status).ok()) << status;
    auto got = store->GetDeployment(d->id);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->status, status);
    EXPECT_EQ(got->updated_at, kClockStart + t) << status;
    EXPECT_EQ(got->finished_at, 0) << status << " is not terminal";
    EXPECT_EQ(got->created_at, kClockStart + 10);
  }

  ASSERT_TRUE(store->SetDeploymentBuildPgid(d->id, 4242).ok());
  EXPECT_EQ(store->GetDeployment(d->id)->build_pgid, 4242);

  const std::vector<std::string> terminal = {kRemoved, kBuildFailed, kDeployFailed,
                                             kCrashed, kRolledBack,  kSkipped};
  for (const std::string& status : terminal) {
    auto dep = store->CreateDeployment(svc.id, "upload", "{}");
    ASSERT_TRUE(dep.ok());
    clock_.Advance(milliseconds(100));
    ASSERT_TRUE(store->SetDeploymentStatus(dep->id, status, "why: " + status).ok());
    auto got = store->GetDeployment(dep->id);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->status, status);
    EXPECT_EQ(got->error, "why: " + status);
    EXPECT_EQ(got->finished_at, UnixMillis(clock_)) << status << " is terminal";
    EXPECT_EQ(got->updated_at, UnixMillis(clock_));
  }

  // An empty error keeps the one already recorded.
  auto failed = store->CreateDeployment(svc.id, "upload", "{}");
  ASSERT_TRUE(failed.ok());
  ASSERT_TRUE(store->SetDeploymentStatus(failed->id, kBuilding, "step npm ci failed").ok());
  ASSERT_TRUE(store->SetDeploymentStatus(failed->id, kBuildFailed).ok());
  EXPECT_EQ(store->GetDeployment(failed->id)->error, "step npm ci failed");

  Status bad = store->SetDeploymentStatus(d->id, "FINISHED");
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("FINISHED"), std::string::npos);
  EXPECT_EQ(store->GetDeployment(d->id)->status, kDraining) << "a refused status changes nothing";

  auto newest = store->ListDeployments(svc.id, 3);
  ASSERT_TRUE(newest.ok());
  ASSERT_EQ(newest->size(), 3u);
  EXPECT_EQ((*newest)[0].id, failed->id);
  EXPECT_GT((*newest)[0].id, (*newest)[1].id);
  EXPECT_GT((*newest)[1].id, (*newest)[2].id);
  auto all = store->ListDeployments(svc.id, 100);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1 + terminal.size() + 1);
}

TEST_F(StoreTest, ListDeploymentsByStatusIsOldestFirstAcrossServices) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  ServiceRecord web = MakeService(*store, "shop", "web");
  ServiceRecord api = MakeService(*store, "shop", "api");
  auto d1 = store->CreateDeployment(web.id, "upload", "{}");
  auto d2 = store->CreateDeployment(api.id, "upload", "{}");
  auto d3 = store->CreateDeployment(web.id, "upload", "{}");
  auto d4 = store->CreateDeployment(api.id, "upload", "{}");
  ASSERT_TRUE(d1.ok() && d2.ok() && d3.ok() && d4.ok());
  ASSERT_TRUE(store->SetDeploymentStatus(d1->id, kBuilding).ok());
  ASSERT_TRUE(store->SetDeploymentStatus(d2->id, kActive).ok());
  ASSERT_TRUE(store->SetDeploymentStatus(d4->id, kDeploying).ok());

  auto busy = store->ListDeploymentsByStatus({kQueued, kBuilding, kDeploying});
  ASSERT_TRUE(busy.ok()) << busy.status().ToString();
  std::vector<int64_t> ids;
  for (const auto& d : *busy) ids.push_back(d.id);
  EXPECT_EQ(ids, (std::vector<int64_t>{d1->id, d3->id, d4->id}));

  auto active = store->ListDeploymentsByStatus({kActive});
  ASSERT_TRUE(active.ok());
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ((*active)[0].id, d2->id);

  auto none = store->ListDeploymentsByStatus({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  auto nothing = store->ListDeploymentsByStatus({kCrashed});
  ASSERT_TRUE(nothing.ok());
  EXPECT_TRUE(nothing->empty());
}

TEST_F(StoreTest, ReleasesAndActiveDeployment) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  ServiceRecord web = MakeService(*store, "shop", "web");
  ServiceRecord api = MakeService(*store, "shop", "api");
  auto d1 = store->CreateDeployment(web.id, "upload", "{}");
  auto d2 = store->CreateDeployment(web.id, "upload", "{}");
  ASSERT_TRUE(d1.ok() && d2.ok());

  clock_.Advance(milliseconds(7));
  auto r1 = store->CreateRelease(web.id, d1->id, "/data/releases/1", R"({"start":"a"})");
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();
  EXPECT_EQ(r1->service_id, web.id);
  EXPECT_EQ(r1->deployment_id, d1->id);
  EXPECT_EQ(r1->path, "/data/releases/1");
  EXPECT_EQ(r1->manifest_json, R"({"start":"a"})");
  EXPECT_EQ(r1->created_at, kClockStart + 7);
  auto r2 = store->CreateRelease(web.id, d2->id, "/data/releases/2", "{}");
  ASSERT_TRUE(r2.ok());

  auto got = store->GetRelease(r1->id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->path, "/data/releases/1");
  auto listed = store->ListReleases(web.id);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].id, r2->id) << "newest first";
  EXPECT_EQ((*listed)[1].id, r1->id);
  EXPECT_TRUE(store->ListReleases(api.id)->empty());

  EXPECT_EQ(store->CreateRelease(api.id, d1->id, "/x", "{}").status().code(),
            StatusCode::kInvalidArgument)
      << "a release belongs to the service its deployment belongs to";

  ASSERT_TRUE(store->SetDeploymentRelease(d1->id, r1->id).ok());
  EXPECT_EQ(store->GetDeployment(d1->id)->release_id, r1->id);
  EXPECT_EQ(store->SetDeploymentRelease(d1->id, 999).code(), StatusCode::kNotFound);

  ASSERT_TRUE(store->SetActiveDeployment(web.id, d1->id).ok());
  EXPECT_EQ(store->GetService(web.id)->active_deployment_id, d1->id);
  EXPECT_EQ(store->SetActiveDeployment(api.id, d1->id).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->SetActiveDeployment(web.id, 999).code(), StatusCode::kNotFound);
  ASSERT_TRUE(store->SetActiveDeployment(web.id, 0).ok());
  EXPECT_EQ(store->GetService(web.id)->active_deployment_id, 0);

  ASSERT_TRUE(store->SetServiceConfig(web.id, R"({"port":8000})").ok());
  EXPECT_EQ(store->GetService(web.id)->config_json, R"({"port":8000})");

  EXPECT_EQ(store->GetService(web.id)->scale, 0);
  ASSERT_TRUE(store->SetServiceScale(web.id, 3).ok());
  EXPECT_EQ(store->GetService(web.id)->scale, 3);
  EXPECT_EQ(store->SetServiceScale(999, 3).code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, EnvironmentsAreListedAndDeletedWithEverythingInThem) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  ServiceRecord prod = MakeService(*store, "shop", "web");
  auto staging = store->EnsureEnvironment(prod.project_id, "staging");
  auto alpha = store->EnsureEnvironment(prod.project_id, "alpha");
  ASSERT_TRUE(staging.ok() && alpha.ok());
  auto envs = store->ListEnvironments(prod.project_id);
  ASSERT_TRUE(envs.ok());
  ASSERT_EQ(envs->size(), 3u);
  EXPECT_EQ((*envs)[0].name, "production") << "production first";
  EXPECT_EQ((*envs)[1].name, "alpha");
  EXPECT_EQ((*envs)[2].name, "staging");

  // A staging service with a deployment that went live, a release, a replica, a
  // domain and events; the same service name in production must survive.
  auto web = store->EnsureService(prod.project_id, staging->id, "web");
  ASSERT_TRUE(web.ok());
  auto dep = store->CreateDeployment(web->id, "upload", "{}");
  ASSERT_TRUE(dep.ok());
  auto rel = store->CreateRelease(web->id, dep->id, "/data/releases/1", "{}");
  ASSERT_TRUE(rel.ok());
  ASSERT_TRUE(store->SetDeploymentRelease(dep->id, rel->id).ok());
  ASSERT_TRUE(store->SetActiveDeployment(web->id, dep->id).ok());
  ReplicaRecord replica;
  replica.deployment_id = dep->id;
  replica.state = "running";
  ASSERT_TRUE(store->UpsertReplica(replica).ok());
  DomainRecord domain;
  domain.service_id = web->id;
  domain.host = "staging.example.com";
  ASSERT_TRUE(store->AddDomain(domain).ok());
  ASSERT_TRUE(store->AddEvent(web->id, dep->id, "deploy.active", "live").ok());
  auto prod_dep = store->CreateDeployment(prod.id, "upload", "{}");
  ASSERT_TRUE(prod_dep.ok());

  ASSERT_TRUE(store->DeleteEnvironment(staging->id).ok());
  EXPECT_EQ(store->GetEnvironment(prod.project_id, "staging").status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(store->GetService(web->id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->GetDeployment(dep->id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->GetRelease(rel->id).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store->ListLiveReplicas()->empty());
  EXPECT_TRUE(store->ListDomains(0)->empty());
  // Production is untouched.
  EXPECT_TRUE(store->GetService(prod.id).ok());
  EXPECT_TRUE(store->GetDeployment(prod_dep->id).ok());
  EXPECT_EQ(store->ListEnvironments(prod.project_id)->size(), 2u);
  // The name can be used again.
  EXPECT_TRUE(store->EnsureEnvironment(prod.project_id, "staging").ok());
  EXPECT_EQ(store->DeleteEnvironment(999).code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, ReplicasUpsertAndLiveList) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  ServiceRecord web = MakeService(*store, "shop", "web");
  auto d1 = store->CreateDeployment(web.id, "upload", "{}");
  auto d2 = store->CreateDeployment(web.id, "upload", "{}");
  ASSERT_TRUE(d1.ok() && d2.ok());

  ReplicaRecord r;
  r.deployment_id = d1->id;
  r.index = 0;
  r.port = 41000;
  r.shim_pid = 100;
  r.shim_start_time = 123456;
  r.app_pid = 101;
  r.state = "starting";
  r.run_dir = "/data/run/1-0";
  r.log_path = "/data/logs/web.log";
  clock_.Advance(milliseconds(3));
  auto id0 = store->UpsertReplica(r);
  ASSERT_TRUE(id0.ok()) << id0.status().ToString();
  EXPECT_GT(*id0, 0);

  ReplicaRecord second = r;
  second.index = 1;
  second.port = 41001;
  auto id1 = store->UpsertReplica(second);
  ReplicaRecord other = r;
  other.deployment_id = d2->id;
  other.state = "stopped";
  auto id2 = store->UpsertReplica(other);
  ASSERT_TRUE(id1.ok() && id2.ok());
  EXPECT_NE(*id0, *id1);

  auto listed = store->ListReplicas(d1->id);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  const ReplicaRecord& got = (*listed)[0];
  EXPECT_EQ(got.id, *id0);
  EXPECT_EQ(got.deployment_id, d1->id);
  EXPECT_EQ(got.index, 0);
  EXPECT_EQ(got.port, 41000);
  EXPECT_EQ(got.shim_pid, 100);
  EXPECT_EQ(got.shim_start_time, 123456);
  EXPECT_EQ(got.app_pid, 101);
  EXPECT_EQ(got.state, "starting");
  EXPECT_EQ(got.restarts, 0);
  EXPECT_EQ(got.run_dir, "/data/run/1-0");
  EXPECT_EQ(got.log_path, "/data/logs/web.log");
  EXPECT_EQ(got.started_at, kClockStart + 3) << "started_at defaults to now on insert";
  EXPECT_EQ(got.updated_at, kClockStart + 3);
  EXPECT_EQ((*listed)[1].index, 1);

  // Update in place: the same id, new fields, started_at kept when given as 0.
  ReplicaRecord update = got;
  update.state = "running";
  update.restarts = 2;
  update.app_pid = 202;
  update.started_at = 0;
  clock_.Advance(milliseconds(50));
  auto same = store->UpsertReplica(update);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(*same, *id0);
  auto after = store->ListReplicas(d1->id);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 2u);
  EXPECT_EQ((*after)[0].state, "running");
  EXPECT_EQ((*after)[0].restarts, 2);
  EXPECT_EQ((*after)[0].app_pid, 202);
  EXPECT_EQ((*after)[0].started_at, kClockStart + 3);
  EXPECT_EQ((*after)[0].updated_at, kClockStart + 53);

  auto live = store->ListLiveReplicas();
  ASSERT_TRUE(live.ok());
  std::set<int64_t> live_ids;
  for (const auto& x : *live) live_ids.insert(x.id);
  EXPECT_EQ(live_ids, (std::set<int64_t>{*id0, *id1})) << "the stopped replica is not live";

  update.state = "crashed";
  ASSERT_TRUE(store->UpsertReplica(update).ok());
  second.id = *id1;
  second.state = "stopped";
  ASSERT_TRUE(store->UpsertReplica(second).ok());
  live = store->ListLiveReplicas();
  ASSERT_TRUE(live.ok());
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ((*live)[0].id, *id0) << "a crashed replica is still live (its shim may be around)";
}

TEST_F(StoreTest, EventsAreChronologicalAndLimitedToTheLatest) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  ServiceRecord web = MakeService(*store, "shop", "web");
  ServiceRecord api = MakeService(*store, "shop", "api");
  auto d = store->CreateDeployment(web.id, "upload", "{}");
  ASSERT_TRUE(d.ok());

  for (int i = 0; i < 5; ++i) {
    clock_.Advance(milliseconds(1));
    ASSERT_TRUE(store->AddEvent(web.id, i % 2 == 0 ? d->id : 0, "step", std::to_string(i)).ok());
  }
  ASSERT_TRUE(store->AddEvent(api.id, 0, "other", "not web's").ok());

  auto all = store->ListEvents(web.id, 0, 100);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ((*all)[i].message, std::to_string(i));
    EXPECT_EQ((*all)[i].at, kClockStart + i + 1);
    EXPECT_EQ((*all)[i].service_id, web.id);
    EXPECT_EQ((*all)[i].deployment_id, i % 2 == 0 ? d->id : 0);
    EXPECT_EQ((*all)[i].kind, "step");
  }

  auto latest = store->ListEvents(web.id, 0, 2);
  ASSERT_TRUE(latest.ok());
  ASSERT_EQ(latest->size(), 2u);
  EXPECT_EQ((*latest)[0].message, "3");
  EXPECT_EQ((*latest)[1].message, "4") << "newest last";

  auto of_deploy = store->ListEvents(web.id, d->id, 100);
  ASSERT_TRUE(of_deploy.ok());
  ASSERT_EQ(of_deploy->size(), 3u);
  EXPECT_EQ((*of_deploy)[0].message, "0");
  EXPECT_EQ((*of_deploy)[1].message, "2");
  EXPECT_EQ((*of_deploy)[2].message, "4");
}

TEST_F(StoreTest, DataSurvivesCloseAndReopen) {
  int64_t service_id = 0;
  int64_t deployment_id = 0;
  {
    auto store = OpenStore();
    ASSERT_TRUE(store);
    ServiceRecord web = MakeService(*store, "shop", "web");
    service_id = web.id;
    auto d = store->CreateDeployment(web.id, "upload", "{}");
    ASSERT_TRUE(d.ok());
    deployment_id = d->id;
    ASSERT_TRUE(store->SetDeploymentStatus(d->id, kActive).ok());
    ASSERT_TRUE(store->AddEvent(web.id, d->id, "deploy.active", "healthy").ok());
  }
  auto store = OpenStore();
  ASSERT_TRUE(store);
  auto p = store->GetProject("shop");
  ASSERT_TRUE(p.ok());
  auto env = store->GetEnvironment(p->id, "production");
  ASSERT_TRUE(env.ok());
  auto web = store->FindService(env->id, "web");
  ASSERT_TRUE(web.ok());
  EXPECT_EQ(web->id, service_id);
  auto d = store->GetDeployment(deployment_id);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->status, kActive);
  auto events = store->ListEvents(service_id, 0, 10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].message, "healthy");
  // New ids continue after the old ones.
  auto d2 = store->CreateDeployment(service_id, "upload", "{}");
  ASSERT_TRUE(d2.ok());
  EXPECT_GT(d2->id, deployment_id);
}

TEST_F(StoreTest, DatabaseFromANewerSlipwayIsRefused) {
  int known = 0;
  {
    auto store = OpenStore();
    ASSERT_TRUE(store);
    known = store->SchemaVersion();
    ASSERT_TRUE(store->EnsureProject("shop").ok());
  }
  ASSERT_LT(known, 7);
  SetUserVersion(7);

  auto refused = Store::Open(path_, clock_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.status().message(), path_ +
                                            " has schema version 7 but this slipway knows up to " +
                                            std::to_string(known) + "; upgrade slipway");

  // Refusing left the file as it was: putting the version back makes it usable again.
  SetUserVersion(known);
  auto store = OpenStore();
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->GetProject("shop").ok());
}

TEST_F(StoreTest, AFileThatIsNotADatabaseIsRefusedWithItsPath) {
  ASSERT_TRUE(WriteFileAtomic(path_, std::string(4096, 'x'), 0600).ok());
  auto store = Store::Open(path_, clock_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find(path_), std::string::npos) << store.status().ToString();
}

TEST_F(StoreTest, FilesAreCreatedPrivate) {
  // A pre-existing, too open file is tightened as well.
  ASSERT_TRUE(WriteFileAtomic(path_, "", 0644).ok());
  auto store = OpenStore();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->EnsureProject("shop").ok());  // the WAL now has content
  for (const std::string& f : {path_, path_ + "-wal", path_ + "-shm"}) {
    struct stat st {};
    ASSERT_EQ(::stat(f.c_str(), &st), 0) << f << " should exist in WAL mode";
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
}

TEST_F(StoreTest, ConcurrentWritersAllLand) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  ServiceRecord web = MakeService(*store, "shop", "web");
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string tag = std::to_string(t) + "-" + std::to_string(i);
        auto d = store->CreateDeployment(web.id, tag, "{}");
        if (!d.ok() || !store->SetDeploymentStatus(d->id, kBuilding).ok() ||
            !store->AddEvent(web.id, d->id, "deploy.started", tag).ok() ||
            !store->EnsureService(web.project_id, web.environment_id, "svc" + std::to_string(i))
                 .ok()) {
          ++failures[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;

  auto deployments = store->ListDeployments(web.id, 0);
  ASSERT_TRUE(deployments.ok());
  std::set<std::string> sources;
  for (const auto& d : *deployments) {
    sources.insert(d.source);
    EXPECT_EQ(d.status, kBuilding);
  }
  EXPECT_EQ(deployments->size(), size_t{kThreads * kPerThread});
  EXPECT_EQ(sources.size(), size_t{kThreads * kPerThread});
  auto events = store->ListEvents(web.id, 0, 0);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->size(), size_t{kThreads * kPerThread});
  auto services = store->ListServices(web.environment_id);
  ASSERT_TRUE(services.ok());
  EXPECT_EQ(services->size(), size_t{1 + kPerThread}) << "concurrent Ensure made duplicates";
}

// In a child process (the limit is process-wide): cap the size any file may grow to,
// so SQLite's writes really fail the way they do on a full disk.
void FillTheDiskAndCheck(const std::string& path) {
  ManualClock clock;
  auto opened = Store::Open(path, clock);
  if (!opened.ok()) {
    fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
    _exit(2);
  }
  auto& store = *opened;
  auto p = store->EnsureProject("shop");
  auto env = store->GetEnvironment(p->id, "production");
  auto web = store->EnsureService(p->id, env->id, "web");
  if (!web.ok()) _exit(3);
  if (!store->AddEvent(web->id, 0, "before", "kept").ok()) _exit(4);

  signal(SIGXFSZ, SIG_IGN);
  struct stat db {
  }, wal{};
  stat(path.c_str(), &db);
  stat((path + "-wal").c_str(), &wal);
  rlimit old{};
  getrlimit(RLIMIT_FSIZE, &old);
  rlimit cap = old;
  cap.rlim_cur = static_cast<rlim_t>(std::max(db.st_size, wal.st_size) + 64 * 1024);
  setrlimit(RLIMIT_FSIZE, &cap);

  Status st;
  const std::string big(16 * 1024, 'e');
  for (int i = 0; i < 1000 && st.ok(); ++i) st = store->AddEvent(web->id, 0, "filler", big);
  setrlimit(RLIMIT_FSIZE, &old);

  if (st.ok()) {
    fprintf(stderr, "writes never failed\n");
    _exit(5);
  }
  if (st.code() != StatusCode::kResourceExhausted ||
      st.message().find("state.db at " + path) == std::string::npos) {
    fprintf(stderr, "wrong status: %s\n", st.ToString().c_str());
    _exit(6);
  }
  // The failed transaction left nothing half-done, and the store works again.
  Status after = store->AddEvent(web->id, 0, "after", "space is back");
  if (!after.ok()) {
    fprintf(stderr, "after: %s\n", after.ToString().c_str());
    _exit(7);
  }
  auto events = store->ListEvents(web->id, 0, 1);
  if (!events.ok() || events->size() != 1 || (*events)[0].kind != "after") _exit(8);
  fprintf(stderr, "disk full reported as: %s\n", st.ToString().c_str());
  _exit(0);
}

TEST_F(StoreTest, DiskFullIsResourceExhaustedNamingTheFile) {
  // The default "fast" style forks here, so the child uses this test's temp dir and
  // TearDown (in the parent) removes it.
  EXPECT_EXIT(FillTheDiskAndCheck(path_), ::testing::ExitedWithCode(0),
              "disk full reported as: RESOURCE_EXHAUSTED");
}

}  // namespace
}  // namespace slipway

namespace slipway {
namespace {

class StoreVariablesTest : public StoreTest {};

VariableRecord Var(int64_t env, const std::string& service, const std::string& name,
                   const std::string& sealed) {
  VariableRecord v;
  v.environment_id = env;
  v.service = service;
  v.name = name;
  v.sealed_value = sealed;
  return v;
}

TEST_F(StoreVariablesTest, MigratesAVersion3DatabaseKeepingItsRows) {
  int64_t deployment_id = 0;
  {
    auto store = OpenStore();
    ASSERT_TRUE(store);
    ServiceRecord web = MakeService(*store, "shop", "web");
    auto dep = store->CreateDeployment(web.id, "upload", "{}");
    ASSERT_TRUE(dep.ok());
    deployment_id = dep->id;
  }
  // Back to the shape version 3 had, rows kept, as a database of the previous slipway.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db,
                           "DROP INDEX environments_one_per_branch; "
                           "ALTER TABLE environments DROP COLUMN git_branch; "
                           "ALTER TABLE projects DROP COLUMN production_branch; "
                           "ALTER TABLE projects DROP COLUMN preview_from; "
                           "DROP TABLE cron_runs; DROP TABLE backups; DROP TABLE addons; "
                           "DROP TABLE variables; ALTER TABLE deployments DROP COLUMN env_sealed; "
                           "PRAGMA user_version=3",
                           nullptr, nullptr, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  auto store = OpenStore();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->SchemaVersion(), 6);
  auto dep = store->GetDeployment(deployment_id);
  ASSERT_TRUE(dep.ok());
  EXPECT_EQ(*store->GetDeploymentEnv(deployment_id), "");
  ASSERT_TRUE(store->SetDeploymentEnv(deployment_id, "sealed-env").ok());
  EXPECT_EQ(*store->GetDeploymentEnv(deployment_id), "sealed-env");
  auto project = store->GetProject("shop");
  auto env = store->GetEnvironment(project->id, "production");
  ASSERT_TRUE(store->SetVariables({Var(env->id, "web", "API_KEY", "v1")}).ok());
  EXPECT_EQ(store->ListVariables(env->id)->size(), 1u);
}

TEST_F(StoreVariablesTest, UserAndConfigRowsCoexistAndAreReplacedSeparately) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  ServiceRecord web = MakeService(*store, "shop", "web");
  const int64_t env = web.environment_id;
  ASSERT_TRUE(
      store->SetVariables({Var(env, "", "REGION", "a"), Var(env, "web", "TOKEN", "b")}).ok());
  ASSERT_TRUE(store->ReplaceConfigVariables(env, "", {Var(0, "x", "REGION", "c")}).ok());
  // Setting again replaces the user row only.
  ASSERT_TRUE(store->SetVariables({Var(env, "", "REGION", "d")}).ok());
  auto rows = store->ListVariables(env);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].name, "REGION");
  EXPECT_EQ((*rows)[0].sealed_value, "d");
  EXPECT_EQ((*rows)[0].source, "cli");
  EXPECT_EQ((*rows)[1].sealed_value, "c");
  EXPECT_EQ((*rows)[1].source, "config");
  EXPECT_EQ((*rows)[2].service, "web");

  // Unset: all or nothing, naming what is missing.
  Status missing = store->DeleteVariables(env, "web", {"TOKEN", "NOPE"});
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.message(), "no variable NOPE is set for service \"web\"");
  EXPECT_EQ(store->ListVariables(env)->size(), 3u);
  ASSERT_TRUE(store->DeleteVariables(env, "web", {"TOKEN"}).ok());
  ASSERT_TRUE(store->DeleteVariables(env, "", {"REGION"}).ok());
  rows = store->ListVariables(env);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].source, "config");  // config rows go only with the config
  ASSERT_TRUE(store->ReplaceConfigVariables(env, "", {}).ok());
  EXPECT_TRUE(store->ListVariables(env)->empty());
}

}  // namespace
}  // namespace slipway

namespace slipway {
namespace {

TEST_F(StoreTest, AddonsAreUniquePerEnvironmentAndUpdatedInPlace) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  ServiceRecord web = MakeService(*store, "shop", "web");
  AddonRecord a;
  a.environment_id = web.environment_id;
  a.name = "db";
  a.kind = "postgres";
  a.port = 41000;
  a.sealed_password = "sealed";
  auto created = store->CreateAddon(a);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(created->state, "provisioning");
  auto again = store->CreateAddon(a);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(again.status().message().find("\"db\" already (postgres)"), std::string::npos)
      << again.status().message();

  AddonRecord updated = *created;
  updated.state = "running";
  updated.shim_pid = 1234;
  updated.settings_json = R"({"database":"shop"})";
  ASSERT_TRUE(store->UpdateAddon(updated).ok());
  auto found = store->FindAddon(web.environment_id, "db");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->state, "running");
  EXPECT_EQ(found->shim_pid, 1234);
  EXPECT_EQ(found->port, 41000);
  EXPECT_EQ(found->settings_json, R"({"database":"shop"})");
  EXPECT_EQ(store->ListAddons(web.environment_id)->size(), 1u);
  EXPECT_EQ(store->ListAddons(0)->size(), 1u);
  EXPECT_EQ(store->FindAddon(web.environment_id, "cache").status().code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, BackupsAreNewestFirstAndGoWithTheirAddon) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  ServiceRecord web = MakeService(*store, "shop", "web");
  AddonRecord a;
  a.environment_id = web.environment_id;
  a.name = "db";
  a.kind = "postgres";
  auto addon = store->CreateAddon(a);
  ASSERT_TRUE(addon.ok());
  BackupRecord b;
  b.addon_id = addon->id;
  b.trigger = "manual";
  auto first = store->CreateBackup(b);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->status, kBackupRunning);
  EXPECT_EQ(first->finished_at, 0);
  clock_.Advance(milliseconds(5));
  auto second = store->CreateBackup(b);
  ASSERT_TRUE(second.ok());
  BackupRecord done = *first;
  done.status = kBackupCompleted;
  done.bytes = 2048;
  done.sha256 = "ab";
  done.path = "/x/1.dump";
  done.finished_at = kClockStart + 10;
  ASSERT_TRUE(store->UpdateBackup(done).ok());
  auto list = store->ListBackups(addon->id);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, second->id);
  EXPECT_EQ((*list)[1].status, kBackupCompleted);
  EXPECT_EQ((*list)[1].bytes, 2048);
  EXPECT_EQ((*list)[1].finished_at, kClockStart + 10);
  ASSERT_TRUE(store->DeleteBackup(second->id).ok());
  EXPECT_EQ(store->DeleteBackup(second->id).code(), StatusCode::kNotFound);
  ASSERT_TRUE(store->DeleteAddon(addon->id).ok());
  EXPECT_EQ(store->GetBackup(first->id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->CreateBackup(b).status().code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, ACronSlotHasOneRunButManualRunsAreUnlimited) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  ServiceRecord job = MakeService(*store, "shop", "nightly");
  EXPECT_EQ(*store->LastCronSlot(job.id), 0);
  CronRunRecord r;
  r.service_id = job.id;
  r.trigger = "schedule";
  r.scheduled_for = 1'800'000'000'000;
  r.started_at = r.scheduled_for;
  auto run = store->CreateCronRun(r);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  auto twice = store->CreateCronRun(r);
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(twice.status().message().find("has a run already"), std::string::npos);
  EXPECT_EQ(*store->LastCronSlot(job.id), r.scheduled_for);

  CronRunRecord manual = r;
  manual.trigger = "manual";
  ASSERT_TRUE(store->CreateCronRun(manual).ok());
  ASSERT_TRUE(store->CreateCronRun(manual).ok());
  EXPECT_EQ(*store->LastCronSlot(job.id), r.scheduled_for);
  EXPECT_EQ(store->ListRunningCronRuns()->size(), 3u);

  CronRunRecord finished = *run;
  finished.status = kRunFailed;
  finished.exit_code = 3;
  finished.finished_at = r.scheduled_for + 1500;
  ASSERT_TRUE(store->UpdateCronRun(finished).ok());
  auto got = store->GetCronRun(run->id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, kRunFailed);
  EXPECT_EQ(got->exit_code, 3);
  EXPECT_EQ(got->finished_at - got->started_at, 1500);
  EXPECT_EQ(store->ListRunningCronRuns()->size(), 2u);
  auto history = store->ListCronRuns(job.id, 2);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].trigger, "manual");
}

TEST_F(StoreTest, DeletingAnEnvironmentTakesItsAddonsBackupsAndCronRuns) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  auto project = store->EnsureProject("shop");
  ASSERT_TRUE(project.ok());
  auto staging = store->EnsureEnvironment(project->id, "staging");
  ASSERT_TRUE(staging.ok());
  auto job = store->EnsureService(project->id, staging->id, "nightly");
  ASSERT_TRUE(job.ok());
  AddonRecord a;
  a.environment_id = staging->id;
  a.name = "db";
  a.kind = "postgres";
  auto addon = store->CreateAddon(a);
  ASSERT_TRUE(addon.ok());
  BackupRecord b;
  b.addon_id = addon->id;
  ASSERT_TRUE(store->CreateBackup(b).ok());
  CronRunRecord r;
  r.service_id = job->id;
  r.trigger = "manual";
  ASSERT_TRUE(store->CreateCronRun(r).ok());
  ServiceRecord prod = MakeService(*store, "shop", "web");
  AddonRecord p = a;
  p.environment_id = prod.environment_id;
  ASSERT_TRUE(store->CreateAddon(p).ok());

  ASSERT_TRUE(store->DeleteEnvironment(staging->id).ok());
  EXPECT_EQ(store->ListAddons(0)->size(), 1u);
  EXPECT_TRUE(store->ListBackups(0)->empty());
  EXPECT_TRUE(store->ListCronRuns(0, 0)->empty());
}

}  // namespace
}  // namespace slipway
